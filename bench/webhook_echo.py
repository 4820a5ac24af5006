"""The baseline `webhook_load.py` measures against: a bare FastAPI app that parses the
Alertmanager payload and echoes it back, under plain uvicorn, with nothing stored.

    .venv/bin/python -m uvicorn --app-dir bench webhook_echo:app --port 8099 --workers 2
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

app = FastAPI()


@app.post("/api/v1/webhooks/alertmanager")
async def echo(request: Request) -> Any:
    return await request.json()


@app.get("/readyz")
async def ready() -> dict[str, str]:
    return {"status": "ok"}
