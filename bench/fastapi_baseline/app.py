"""The FastAPI equivalent of Stoa's `/v1/chat/completions`, for the gateway benchmark.

What a careful FastAPI team would write: a Pydantic v2 request model that refuses unknown
fields and checks every parameter (as Stoa does, before any token is spent), the official
`openai` client relaying the upstream's stream, and server-sent events out, ending in
`[DONE]`. Run by bench/gateway.rs as
`uvicorn app:app --workers <cores> --loop uvloop --http httptools --no-access-log`.
"""

import os
from typing import Literal, Optional

import httpx2 as httpx  # the HTTP library of openai 3.x
from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from openai import APIError, AsyncOpenAI
from pydantic import BaseModel, ConfigDict, Field

UPSTREAM = os.environ.get("UPSTREAM_BASE_URL", "http://127.0.0.1:3990/v1")

# One client per worker process, with a pool as large as the benchmark's concurrency.
client = AsyncOpenAI(
    base_url=UPSTREAM,
    api_key="bench",
    max_retries=0,
    http_client=httpx.AsyncClient(
        limits=httpx.Limits(max_connections=4096, max_keepalive_connections=4096),
        timeout=httpx.Timeout(120.0, connect=5.0),
    ),
)

app = FastAPI(title="FastAPI gateway baseline")


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1, max_length=200_000)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=256)
    messages: list[Message] = Field(min_length=1, max_length=1000)
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    temperature: Optional[float] = Field(default=None, ge=0.0, le=2.0)
    top_p: Optional[float] = Field(default=None, gt=0.0, le=1.0)
    max_tokens: Optional[int] = Field(default=None, ge=1, le=32768)
    user: Optional[str] = Field(default=None, max_length=256)


@app.get("/v1/models")
async def models():
    return {"object": "list", "data": [{"id": "scripted", "object": "model", "owned_by": "bench"}]}


@app.post("/v1/chat/completions")
async def chat_completions(req: ChatCompletionRequest):
    params = req.model_dump(exclude_none=True, exclude={"stream", "stream_options"})
    try:
        if not req.stream:
            return JSONResponse((await client.chat.completions.create(**params)).model_dump())
        options = req.stream_options.model_dump() if req.stream_options else None
        stream = await client.chat.completions.create(**params, stream=True, stream_options=options)
    except APIError as e:
        return JSONResponse({"error": {"message": str(e), "type": "upstream_error"}}, status_code=502)

    async def events():
        try:
            async for chunk in stream:
                yield f"data: {chunk.model_dump_json(exclude_unset=True)}\n\n"
        except APIError as e:
            yield f'data: {{"error": {{"message": {str(e)!r}}}}}\n\n'
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")
