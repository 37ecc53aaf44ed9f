"""Serving a run's model over HTTP and gRPC in TensorFlow Serving's protocols (``nettrain
serve``): :mod:`.model` loads the run once and answers requests through :mod:`.batching`,
:mod:`.tensors` reads and writes TF Serving's inputs and outputs, :mod:`.http` is the FastAPI
app, :mod:`.grpc_service` the gRPC PredictionService and ModelService, and :mod:`.server`
runs both until a signal drains them."""
