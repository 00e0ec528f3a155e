"""Prompt rendering and response tokens.

The prompt is the model's chat template around one user message. User text (context, question,
response) is *data*: a pasted ``<|im_end|>`` is tokenized as ordinary characters, never as the
special token, so the model sees exactly what the user typed. Only the template's own markup becomes
special tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .pertoken import span_mask

__all__ = ["DEFAULT_PASSAGE_TEMPLATE", "DEFAULT_TEMPLATE", "PASSAGE_SEPARATOR", "PromptBuilder", "Response",
           "check_passage_template", "fill_template", "passage_frame"]

DEFAULT_TEMPLATE = (
    "Answer the question based on the provided context:\n\nContext:\n{context}\n\nQuestion: {question}"
)
_FIELD = re.compile(r"\{(context|question)\}")
DEFAULT_PASSAGE_TEMPLATE = "[{number}] {title}\n{text}"
"""How one retrieved passage is shown inside ``{context}``, as a RAG system shows its sources: numbered and
titled, e.g. ``[1] Harbour board minutes`` on a line, then the passage's text. Fields: ``{number}`` (1-based
position), ``{id}``, ``{title}`` and ``{text}`` (exactly once). Passages are joined by :data:`PASSAGE_SEPARATOR`."""
PASSAGE_SEPARATOR = "\n\n"
"""Between two rendered passages: a blank line, as between the paragraphs of a plain-text context."""
_PASSAGE_FIELD = re.compile(r"\{(number|id|title)\}")
_SPACE_BEFORE_NEWLINE = re.compile(r"[ \t]+(?=\n)")
_SENTINEL = "\ue000ATTRIBOT_USER_MESSAGE\ue001"
_NO_TEMPLATE_TAIL = "\n\nAnswer:"


def fill_template(template: str, context: str, question: str) -> str:
    """Fill ``{context}`` and ``{question}`` in one pass, so braces in user text stay literal."""
    if "{context}" not in template:
        raise ValueError("The prompt template must contain {context}.")
    values = {"context": context, "question": question}
    return _FIELD.sub(lambda m: values[m.group(1)], template)


def check_passage_template(template: str) -> None:
    """Raise ``ValueError`` unless ``template`` holds ``{text}`` exactly once (its place splits header and footer)."""
    if not isinstance(template, str) or template.count("{text}") != 1:
        raise ValueError("The passage template must contain {text} exactly once "
                         "(fields: {number}, {id}, {title}, {text}).")


def passage_frame(template: str, number: int, passage_id: str, title: str) -> tuple[str, str]:
    """The text a passage template puts before and after a passage's ``{text}``: its header and footer.

    Filled in one pass, so braces in an id or title stay literal. A field left empty (a passage without a
    title) leaves no spaces at the end of a line: ``"[2] {title}\\n"`` becomes ``"[2]\\n"``. Ids and titles
    are part of the context, so the prompt builder encodes them as user text: a title reading
    ``<|im_end|>`` is ordinary characters, never the special token.
    """
    check_passage_template(template)
    values = {"number": str(number), "id": passage_id, "title": title}
    head, _, foot = template.partition("{text}")

    def fill(part: str) -> str:
        return _SPACE_BEFORE_NEWLINE.sub("", _PASSAGE_FIELD.sub(lambda m: values[m.group(1)], part))

    return fill(head), fill(foot)


@dataclass(frozen=True)
class Response:
    """The response being explained.

    ``token_ids`` are kept when the response was generated, because re-encoding the text can split it
    differently and change its log-probability; ``tokenizer_id`` says whose ids they are. A response
    given as text is encoded by each scoring model. ``complete`` says whether it ends with the
    end-of-turn token (generation stopped by itself, or an external answer taken as whole).
    """

    text: str
    token_ids: tuple[int, ...] | None = None
    tokenizer_id: str | None = None
    complete: bool = True


class PromptBuilder:
    """Turns (context, question) into prompt token ids and a response into response token ids."""

    def __init__(self, tokenizer, tokenizer_id: str, template: str = DEFAULT_TEMPLATE) -> None:
        fill_template(template, "", "")  # fail early on a template without {context}
        self.tokenizer = tokenizer
        self.tokenizer_id = tokenizer_id
        self.template = template
        specials = sorted({t for t in tokenizer.all_special_tokens if t}, key=len, reverse=True)
        self._specials = re.compile("|".join(map(re.escape, specials))) if specials else None
        head, tail = self._render_around(_SENTINEL)
        # Markup up to the head's last special token, and from the tail's first one, is encoded as
        # markup; the text between (e.g. "user\n" + message + "") is one run of ordinary text, exactly
        # the run a tokenizer would see in the rendered string.
        self._head_markup, self._head_text = self._cut_after_last_special(head)
        self._tail_text, self._tail_markup = self._cut_before_first_special(tail)
        self.end_of_turn_id = self._find_end_of_turn()

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def _render_around(self, content: str) -> tuple[str, str]:
        if not self.has_chat_template:
            return (self.tokenizer.bos_token or ""), _NO_TEMPLATE_TAIL
        rendered = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
        head, found, tail = rendered.partition(content)
        if not found:
            raise ValueError("The chat template does not place the user message verbatim.")
        return head, tail

    def _cut_after_last_special(self, text: str) -> tuple[str, str]:
        matches = list(self._specials.finditer(text)) if self._specials else []
        cut = matches[-1].end() if matches else 0
        return text[:cut], text[cut:]

    def _cut_before_first_special(self, text: str) -> tuple[str, str]:
        match = self._specials.search(text) if self._specials else None
        cut = match.start() if match else len(text)
        return text[:cut], text[cut:]

    def encode_markup(self, text: str) -> list[int]:
        """Template markup: special-token strings in it become special tokens."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def encode_text(self, text: str) -> list[int]:
        """User text: special-token strings in it are split into ordinary tokens."""
        if not text:
            return []
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]

    def prompt_parts(self, context: str, question: str) -> tuple[list[int], str, int, list[int]]:
        """The prompt as (head markup ids, user-text run, where the message starts in that run, tail ids).

        The user-text run is the template text around the message plus the message itself; it is the
        one piece of the prompt that is tokenized as ordinary text. Callers that need character offsets
        of prompt tokens (e.g. mapping sentences to tokens) tokenize this run with offsets.
        """
        message = fill_template(self.template, context, question)
        run = self._head_text + message + self._tail_text
        return self.encode_markup(self._head_markup), run, len(self._head_text), self.encode_markup(self._tail_markup)

    def prompt_ids(self, context: str, question: str) -> list[int]:
        """Token ids of the prompt (chat template, one user message, generation prompt)."""
        head, run, _, tail = self.prompt_parts(context, question)
        return head + self.encode_text(run) + tail

    def ids_before_question(self, context: str) -> list[int]:
        """Token ids of the prompt's part that no question changes: up to where the template puts the
        question (all of the message where it puts none). What the app computes ahead while a question is
        still being typed. Its last token may tokenize otherwise once a question follows it (``"Question: "``
        then ``" What"``), so a pass starting from it takes only the tokens the two prompts share."""
        cut = self.template.find("{question}")
        before = self.template if cut < 0 else self.template[:cut]
        message = _FIELD.sub(lambda m: context if m.group(1) == "context" else "", before)
        return self.encode_markup(self._head_markup) + self.encode_text(self._head_text + message)

    # -- response ----------------------------------------------------------------------------------
    def _find_end_of_turn(self) -> int | None:
        """The token a chat template puts right after an assistant message (e.g. ``<|im_end|>``)."""
        tok = self.tokenizer
        if self.has_chat_template:
            rendered = tok.apply_chat_template(
                [{"role": "user", "content": "q"}, {"role": "assistant", "content": _SENTINEL}],
                tokenize=False,
            )
            after = rendered.split(_SENTINEL, 1)[1]
            ids = self.encode_markup(after)
            if ids and ids[0] in tok.all_special_ids:
                return ids[0]
        return tok.eos_token_id

    def response_ids(self, response: Response) -> list[int]:
        """Response token ids for this tokenizer: the generated ids when they are ours, else encoded."""
        if response.token_ids is not None and response.tokenizer_id == self.tokenizer_id:
            return list(response.token_ids)
        ids = self.encode_text(response.text)
        if response.complete and self.end_of_turn_id is not None:
            ids.append(self.end_of_turn_id)
        return ids

    def decode(self, ids: list[int]) -> str:
        """Response text of ``ids``, without a final end-of-turn token."""
        if ids and ids[-1] == self.end_of_turn_id:
            ids = ids[:-1]
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def response_token_chars(self, ids: list[int]) -> list[tuple[int, int]]:
        """Character range, in the decoded response text, of each response token.

        Computed from prefix decodes so that generated ids and encoded text are treated alike. A final
        end-of-turn token gets the empty range at the end of the text.
        """
        spans: list[tuple[int, int]] = []
        prev = 0
        for i in range(len(ids)):
            now = max(prev, len(self.decode(ids[: i + 1])))
            spans.append((prev, now))
            prev = now
        return spans

    def response_mask(self, ids: list[int], chars: tuple[int, int] | None) -> list[bool]:
        """Which response tokens a character range of the response covers (all when ``None``).

        A token counts when it overlaps the range; the end-of-turn token counts when the range reaches
        the end of the text, so attributing "the whole answer" and "everything" agree.
        """
        if chars is None:
            return [True] * len(ids)
        start, end = chars
        if start >= end:
            raise ValueError(f"The response range {start}:{end} is empty.")
        mask = span_mask(self.response_token_chars(ids), len(self.decode(ids)), start, end)
        if not any(mask):
            raise ValueError(f"The response range {start}:{end} covers no response token.")
        return mask
