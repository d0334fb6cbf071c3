"""The live loop: `culturecode serve`, a model server that speaks Label Studio's ML-backend protocol.

- `backend`: the protocol (`/health`, `/setup`, `/predict`, `/webhook`, `/versions`, `/train`) over HTTP;
- `trigger`: counts annotations the webhook reports and, after every `loop.every`, runs one retrain
  in the background (debounced, one at a time), its state in the workspace database;
- `isolated`: runs that retrain in a child process, so the server's memory stays at its baseline;
- `connect`: registers the server and its webhook on the workspace's Label Studio projects;
- `status`: `culturecode loop status` (model versions, labels, scores, the counter).

Heavy modules (torch, label_studio_sdk) are imported inside the functions that need them.
"""
