"""A custom MLServer runtime that fails on request, for the remote handler's
tests of its overload, error and timeout paths against a real MLServer.

The model takes x, FP32 [N, 4], and each request says what to do in its rows:

    x[0, 0]  nonce: identifies the request across the client's retries (the
             client's request ids restart with each client, so they cannot)
    x[:, 1]  refuse: the first max(refuse) attempts with this nonce are
             refused with an error of status; a negative value refuses every
             attempt (an overloaded server)
    x[0, 2]  status: the HTTP status of a refusal; 0 means 503
    x[:, 3]  delay: seconds to wait (without blocking other requests) before
             answering; max over the rows. A negative delay instead makes
             that row of y NaN

It answers y = x (FP32 [N, 4], encoded by MLServer's NumpyCodec like the
scikit-learn runtime's outputs, which writes NaN as JSON null) and attempts,
INT64 [N] (written as [N], not as the [N, 1] NumpyCodec would make of it):
the number of attempts with this nonce it has seen, the answered one
included. Refusals are raised as
mlserver.errors.MLServerError with status_code, which MLServer's REST server
turns into that HTTP status with the body {"error": "<message>"}.
"""

import asyncio

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


class FaultyModel(MLModel):
    async def load(self) -> bool:
        self._attempts = {}
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inputs = [i for i in payload.inputs if i.name == "x"]
        if len(inputs) != 1:
            raise MLServerError("faulty: want one input named x", status_code=400)
        x = NumpyCodec.decode_input(inputs[0])
        if x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != 4 or x.shape[0] == 0:
            raise MLServerError(
                f"faulty: x is {x.dtype} {list(x.shape)}; want FP32 [N, 4]", status_code=400
            )
        nonce = float(x[0, 0])
        refuse = float(x[:, 1].max())
        status = int(x[0, 2]) or 503
        delay = float(x[:, 3].max())

        n = self._attempts.get(nonce, 0) + 1
        self._attempts[nonce] = n
        if refuse < 0 or n <= refuse:
            raise MLServerError(
                f"faulty: refusing attempt {n} of request {nonce:g} as told", status_code=status
            )
        if delay > 0:
            await asyncio.sleep(delay)

        y = x.copy()
        y[x[:, 3] < 0] = np.nan
        rows = x.shape[0]
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[
                NumpyCodec.encode_output("y", y),
                ResponseOutput(name="attempts", datatype="INT64", shape=[rows], data=[n] * rows),
            ],
        )
