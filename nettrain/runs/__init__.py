"""Run directories as a table, and runs side by side (``nettrain runs``, ``runs compare``)."""
