"""The human-approval demo: draft a high-risk email, stop for a human, send once.

    START → draft_email → [interrupt before] human_review ─approved→ send_email → END
                                                          └rejected→ END

Process 1 starts the thread and exits at the interrupt; process 2 (a webhook,
hours later, on another machine) records the decision and finishes it.

The drafter is deterministic unless AMBER_LLM_URL names an OpenAI-compatible
endpoint; then the request and response are recorded in the step's event.
`send_email` writes to a local outbox keyed by the step's idempotency key,
so a retried or crashed step can never send twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel

from engine.context import NodeContext
from engine.graph import END, START, Graph
from engine.reducers import append
from engine.retry import RetryPolicy


class EmailState(BaseModel):
    recipient: str = ""
    request: str = ""
    subject: str = ""
    body: str = ""
    risk: str = "unknown"
    approval_granted: bool | None = None
    reviewer: str | None = None
    message_id: str | None = None
    audit: Annotated[list[str], append] = []


def _llm_draft(url: str, request: str, ctx: NodeContext) -> str:
    import urllib.request  # only when an endpoint is configured: it costs ~70 ms to import

    payload = {"model": os.environ.get("AMBER_LLM_MODEL", "default"),
               "messages": [{"role": "user", "content": f"Draft an email: {request}"}]}
    req = urllib.request.Request(f"{url.rstrip('/')}/v1/chat/completions",
                                 data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        answer = json.loads(resp.read())
    ctx.record_io("llm", payload, answer)
    return str(answer["choices"][0]["message"]["content"])


def draft_email(state: EmailState, ctx: NodeContext) -> dict[str, Any]:
    url = os.environ.get("AMBER_LLM_URL", "")
    if url:
        body = _llm_draft(url, state.request, ctx)
    else:
        body = (f"Dear {state.recipient or 'customer'},\n\nAs requested: {state.request}.\n"
                "This transfer is irreversible once confirmed.\n\nRegards,\nTreasury desk")
    return {"subject": f"Action required: {state.request[:60]}", "body": body,
            "risk": "high", "audit": [f"drafted by {'llm' if url else 'template'}"]}


def human_review(state: EmailState, ctx: NodeContext) -> dict[str, Any]:
    decision = ctx.decision if isinstance(ctx.decision, dict) else {}
    approved = bool(decision.get("approved", state.approval_granted))
    verdict = "approved" if approved else "rejected"
    return {"approval_granted": approved, "audit": [f"review: {verdict}"]}


def route_review(state: EmailState) -> str:
    return "send" if state.approval_granted else "stop"


def outbox_dir() -> Path:
    return Path(os.environ.get("AMBER_OUTBOX_DIR", "outbox"))


def send_email(state: EmailState, ctx: NodeContext) -> dict[str, Any]:
    """Deliver once: the file name is the idempotency key, created exclusively."""
    box = outbox_dir()
    box.mkdir(parents=True, exist_ok=True)
    path = box / f"{ctx.idempotency_key.replace(':', '_')}.eml"
    message = f"To: {state.recipient}\nSubject: {state.subject}\n\n{state.body}\n"
    try:
        with path.open("x", encoding="utf-8") as out:
            out.write(message)
        note = "sent"
    except FileExistsError:
        note = "already sent (retry deduplicated)"
    return {"message_id": path.name, "audit": [note]}


def build() -> Graph:
    g = Graph(EmailState, name="email_approval")
    g.add_node("draft_email", draft_email, retry=RetryPolicy(max_attempts=3))
    g.add_node("human_review", human_review)
    g.add_node("send_email", send_email, retry=RetryPolicy(max_attempts=3))
    g.add_edge(START, "draft_email")
    g.add_edge("draft_email", "human_review")
    g.add_conditional_edges("human_review", route_review, {"send": "send_email", "stop": END})
    g.add_edge("send_email", END)
    return g


graph = build().compile(interrupt_before=["human_review"])
