"""The official OpenAI Python client through Stoa to an OpenAI-compatible upstream.

Usage: python openai_relay.py http://127.0.0.1:PORT/v1 MODEL
The upstream (a test double of the Rust suite, src/server/tests/structured.rs) first streams
a tool call in pieces, then answers in words. Exits non-zero with the failed assertion when
what the client sees differs from what the upstream sent.
"""

import json
import sys

from openai import OpenAI

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


def main(base_url: str, model: str) -> None:
    client = OpenAI(base_url=base_url, api_key="not-needed-on-loopback", max_retries=0, timeout=60)
    question = {"role": "user", "content": "What is the weather in Paris?"}

    # Streamed: the client's own accumulation of tool-call deltas.
    calls, finish = {}, None
    for chunk in client.chat.completions.create(model=model, messages=[question], tools=[WEATHER], stream=True):
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
                call["id"] = delta.id or call["id"]
                if delta.function is not None:
                    call["name"] += delta.function.name or ""
                    call["arguments"] += delta.function.arguments or ""
            finish = choice.finish_reason or finish
    assert finish == "tool_calls", finish
    assert list(calls) == [0], calls
    call = calls[0]
    assert call["id"] == "call_abc" and call["name"] == "get_weather", call
    assert json.loads(call["arguments"]) == {"city": "Paris"}, call
    print(f"streamed tool call: {call}")

    # The round trip: the call and its result go back; the upstream answers in words.
    answer = client.chat.completions.create(
        model=model,
        messages=[
            question,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": call["id"], "type": "function",
                     "function": {"name": call["name"], "arguments": call["arguments"]}}
                ],
            },
            {"role": "tool", "tool_call_id": call["id"], "content": "Sunny, 18 C"},
        ],
        tools=[WEATHER],
    )
    assert answer.choices[0].finish_reason == "stop", answer
    assert answer.choices[0].message.content == "It is sunny in Paris.", answer
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
