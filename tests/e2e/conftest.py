"""The browser test uses the same single Label Studio as the integration tests."""

from tests.integration.conftest import codebook, studio_server  # noqa: F401  (shared session fixture)
