"""The auth messages and stub the core signs in and refreshes with: here, the generated
`kiln.v1` ones."""

from kiln.v1 import auth_pb2
from kiln.v1.auth_pb2_grpc import AuthServiceStub

__all__ = ["AuthServiceStub", "auth_pb2"]
