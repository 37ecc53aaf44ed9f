"""The gRPC side of ``nettrain serve``: ``tensorflow.serving.PredictionService``'s
``Predict`` and ``GetModelMetadata`` and ``tensorflow.serving.ModelService``'s
``GetModelStatus``, answered for the stubs of the ``tensorflow-serving-api`` package (a client
written for TF Serving works unchanged). Other methods answer UNIMPLEMENTED."""

from __future__ import annotations

from typing import Any

from nettrain.errors import NettrainError
from nettrain.serve import checks, tensors
from nettrain.serve.model import Served


def add_service(server: Any, served: Served) -> None:
    """Add the PredictionService and ModelService answering for ``served`` to a ``grpc.aio``
    server."""
    import grpc
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    async def check_model(spec: Any, context: Any, status: bool = False) -> None:
        version = spec.version.value if spec.HasField("version") else None
        missing = tensors.not_found(spec.name, version, (served.name, served.version), status)
        if missing:
            await context.abort(grpc.StatusCode.NOT_FOUND, missing)

    def answer_spec(spec: Any) -> None:
        spec.name = served.name
        spec.version.value = int(served.version)
        spec.signature_name = tensors.SIGNATURE

    def answer(out: Any) -> Any:
        response = predict_pb2.PredictResponse()
        answer_spec(response.model_spec)
        for name, proto in tensors.to_protos(out).items():
            response.outputs[name].CopyFrom(proto)
        return response

    class Service(prediction_service_pb2_grpc.PredictionServiceServicer):
        async def Predict(self, request: Any, context: Any) -> Any:
            await check_model(request.model_spec, context)
            try:
                tensors.check_signature(request.model_spec.signature_name)
                size = request.ByteSize()
                x = await served.work(tensors.from_protos, request.inputs, served.inputs,
                                      served.request_rows, size=size)
            except checks.OverLimit as exc:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
            except NettrainError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            return await served.work(answer, await served.tensors(x), size=size)

        async def GetModelMetadata(self, request: Any, context: Any) -> Any:
            await check_model(request.model_spec, context)
            asked = list(request.metadata_field)
            if asked != ["signature_def"]:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"metadata_field: expected ['signature_def'] (the only "
                                    f"metadata there is); received {asked}.")
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            answer_spec(response.model_spec)
            response.model_spec.signature_name = ""
            sigs = get_model_metadata_pb2.SignatureDefMap()
            sigs.signature_def[tensors.SIGNATURE].CopyFrom(
                tensors.signature_def(served.inputs, served.outputs))
            response.metadata["signature_def"].Pack(sigs)
            return response

    class Models(model_service_pb2_grpc.ModelServiceServicer):
        async def GetModelStatus(self, request: Any, context: Any) -> Any:
            if not request.HasField("model_spec"):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec: "
                                    f"expected model_spec.name '{served.name}'.")
            await check_model(request.model_spec, context, status=True)
            return tensors.status_proto(served.version)

        async def HandleReloadConfigRequest(self, request: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "nettrain serve serves one run; "
                                "start another server for another model.")

    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Service(), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(Models(), server)
