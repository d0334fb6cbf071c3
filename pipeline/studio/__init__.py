"""Label Studio: server lifecycle, labeling config, push, pull and annotator accounts.

Community edition has no overlap setting, so independent double coding is done with one project
per annotator over the same segments (see docs/studio.md).
"""

from pipeline.studio.client import Studio, connect
from pipeline.studio.pull import PullReport, pull
from pipeline.studio.push import PushReport, push
from pipeline.studio.server import ServerInfo, server_status, start_server, stop_server
from pipeline.studio.status import studio_status
from pipeline.studio.users import Annotator, add_annotators

__all__ = [
    "Annotator",
    "PullReport",
    "PushReport",
    "ServerInfo",
    "Studio",
    "add_annotators",
    "connect",
    "pull",
    "push",
    "server_status",
    "start_server",
    "stop_server",
    "studio_status",
]
