"""The official OpenAI Python client against Stoa's /v1 API.

Usage: python openai_client.py http://127.0.0.1:3100/v1
Exits non-zero (with the failed assertion) when Stoa does not behave as OpenAI does.
"""

import json
import sys

import openai
from openai import OpenAI
from pydantic import BaseModel


class City(BaseModel):
    name: str
    country: str


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def structured(client: OpenAI, model: str) -> None:
    """models.retrieve, the client's structured-output helper, and a tool-call round trip,
    all against the embedded model."""
    assert client.models.retrieve(model).id == model
    try:
        client.models.retrieve("local/no-such-model")
    except openai.NotFoundError as e:
        assert e.body["code"] == "model_not_found", e.body
    else:
        raise AssertionError("retrieving an unknown model must be a 404")

    parsed = client.chat.completions.parse(
        model=model,
        messages=[{"role": "user", "content": "Name a big city and its country."}],
        response_format=City,
        temperature=0,
        max_tokens=60,
    )
    city = parsed.choices[0].message.parsed
    assert isinstance(city, City) and city.name and city.country, parsed
    print(f"parse: {city!r}")

    question = {"role": "user", "content": "What is the weather in Paris?"}
    first = client.chat.completions.create(
        model=model, messages=[question], tools=[WEATHER], tool_choice="required", temperature=0, max_tokens=60
    )
    assert first.choices[0].finish_reason == "tool_calls", first
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and call.id.startswith("call_"), call
    assert isinstance(json.loads(call.function.arguments)["city"], str), call
    print(f"tool call: {call.function.name}({call.function.arguments})")

    streamed = client.chat.completions.create(
        model=model, messages=[question], tools=[WEATHER], tool_choice="required", temperature=0,
        max_tokens=60, stream=True,
    )
    deltas = [tc for chunk in streamed for choice in chunk.choices for tc in (choice.delta.tool_calls or [])]
    assert deltas and deltas[0].id and deltas[0].function.name == "get_weather", deltas
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == json.loads(call.function.arguments)

    answer = client.chat.completions.create(
        model=model,
        messages=[question, first.choices[0].message, {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 18 C"}],
        tools=[WEATHER],
        temperature=0,
        max_tokens=60,
    )
    assert answer.choices[0].finish_reason in ("stop", "length", "tool_calls"), answer
    print(f"after the tool result: {answer.choices[0].finish_reason}")


def main(base_url: str) -> None:
    client = OpenAI(base_url=base_url, api_key="not-needed-on-loopback", max_retries=0, timeout=120)

    models = client.models.list().data
    assert models, "GET /v1/models lists at least one model"
    model = next(m.id for m in models if m.id.startswith("local/SmolLM2"))
    print(f"models: {[m.id for m in models]}")

    question = [{"role": "user", "content": "What is the capital of France?"}]
    whole = client.chat.completions.create(model=model, messages=question, temperature=0, max_tokens=16)
    text = whole.choices[0].message.content
    assert "Paris" in text, text
    assert whole.usage.completion_tokens > 0
    assert whole.model == model, whole.model
    print(f"non-streaming: {text!r} ({whole.usage.total_tokens} tokens)")

    pieces, finish, usage = [], None, None
    stream = client.chat.completions.create(
        model=model,
        messages=question,
        temperature=0,
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    assert "".join(pieces) == text, (pieces, text)
    assert len(pieces) > 2, "streamed in several chunks"
    assert finish in ("stop", "length"), finish
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens
    print(f"streaming: {len(pieces)} chunks, finish_reason={finish}")

    for kwargs, param in [
        ({"temperature": 7}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
    ]:
        try:
            client.chat.completions.create(model=model, messages=question, **kwargs)
        except openai.BadRequestError as e:
            assert e.status_code == 400
            assert e.body["param"] == param, e.body
            print(f"rejected {kwargs}: {e.body['message']}")
        else:
            raise AssertionError(f"{kwargs} must be rejected")

    embedding_model = next(m.id for m in models if "MiniLM" in m.id)
    # The client asks for base64 by default and decodes it.
    vectors = client.embeddings.create(model=embedding_model, input=["reset my password", "forgot my login", "stock market news"])
    a, b, c = (d.embedding for d in vectors.data)
    dot = lambda x, y: sum(p * q for p, q in zip(x, y))
    assert len(a) == 384, len(a)
    assert dot(a, b) > dot(a, c) + 0.2, (dot(a, b), dot(a, c))
    print(f"embeddings: {len(vectors.data)} x {len(a)}, cos {dot(a, b):.2f} vs {dot(a, c):.2f}")

    try:
        client.chat.completions.create(model="no-such-model", messages=question)
    except openai.NotFoundError as e:
        assert e.body["code"] == "model_not_found", e.body
    else:
        raise AssertionError("an unknown model must be a 404")

    structured(client, model)
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1])
