"""OpenAI's own Python SDK against Parlance's /v1 endpoints: what an app built on it would do.

Usage: check.py BASE_URL [API_KEY]. Prints one JSON object with what came back; server/tests/it/openai_compat.rs
runs it against a real server on the local models and judges the result.
"""

import io
import json
import sys
import wave

import openai
from openai import OpenAI

client = OpenAI(base_url=sys.argv[1].rstrip("/") + "/v1", api_key=sys.argv[2] if len(sys.argv) > 2 else "unused", max_retries=0)
question = "What is the capital of France?"
found = {"sdk_version": openai.__version__}

found["models"] = [model.id for model in client.models.list()]

spoken = client.audio.speech.create(model="tts-1", voice="alloy", input=question, response_format="wav").read()
with wave.open(io.BytesIO(spoken)) as recording:
    found["speech_seconds"] = recording.getnframes() / recording.getframerate()
found["opus_magic"] = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello.", response_format="opus").read()[:4].decode("latin-1")

found["transcript"] = client.audio.transcriptions.create(model="whisper-1", file=("question.wav", spoken, "audio/wav")).text
verbose = client.audio.transcriptions.create(model="whisper-1", file=("question.wav", spoken, "audio/wav"), response_format="verbose_json")
found["verbose"] = {"duration": verbose.duration, "segments": len(verbose.segments or []), "text": verbose.text}
found["plain"] = client.audio.transcriptions.create(model="whisper-1", file=("question.wav", spoken, "audio/wav"), response_format="text")

pieces = []
for chunk in client.chat.completions.create(model="parlance", messages=[{"role": "user", "content": question}], stream=True):
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
found["streamed"] = "".join(pieces)
found["pieces"] = len(pieces)

whole = client.chat.completions.create(
    model="parlance",
    messages=[
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
        {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]},
    ],
)
found["answer_with_history"] = whole.choices[0].message.content

try:
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": question}])
    found["unknown_model"] = "accepted"
except openai.NotFoundError as error:
    found["unknown_model"] = {"status": error.status_code, "code": error.code}

print(json.dumps(found))
