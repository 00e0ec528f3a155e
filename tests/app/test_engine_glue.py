"""The app's run machinery: configuration, result cache, cancellation, the model lock, concurrent sessions."""

from __future__ import annotations

import threading
import time

import pytest
from streamlit.runtime.scriptrunner_utils.exceptions import StopException

from attribot_core import PRESETS, preset_status
from attribot_core.examples import get_example
from studio.config import load_config
from studio.engine import MODEL_LOCK, Cancelled, Reporter, RunCaches, RunRequest, run_attribution

EXAMPLE = get_example("lighthouse")


@pytest.fixture
def request_(tiny_model_dir) -> RunRequest:
    return RunRequest(EXAMPLE.context, EXAMPLE.question, str(tiny_model_dir), "loo", (("paragraphs", True),),
                      response="It was first lit on 3 March 1874.")


class Recorder(Reporter):
    def __init__(self, on_progress=None):
        self.events: list[tuple] = []
        self.on_progress = on_progress

    def phase(self, text):
        self.events.append(("phase", text))

    def waiting(self, seconds):
        self.events.append(("waiting", seconds))

    def progress(self, done, total, what):
        self.events.append(("progress", done, total))
        if self.on_progress:
            self.on_progress(done, total)


def test_config_offers_installed_presets_by_default():
    config = load_config({})
    installed = [name for name, p in PRESETS.items() if preset_status(p)[0]]
    assert config.default_model == "smollm2-135m" and config.models[0] == "smollm2-135m"
    assert set(installed) <= set(config.models) and config.allow_custom
    assert {name for name, _ in config.missing_presets} == set(PRESETS) - set(installed)


def test_config_from_the_environment():
    config = load_config({"ATTRIBOT_MODELS": " a , b,", "ATTRIBOT_DEFAULT_MODEL": "b",
                          "ATTRIBOT_ALLOW_CUSTOM_MODEL": "0"})
    assert config.models == ("b", "a") and config.default_model == "b" and not config.allow_custom


def test_identical_requests_return_the_stored_result(request_):
    caches = RunCaches()
    first, cached = run_attribution(request_, caches)
    again, cached_again = run_attribution(request_, caches)
    assert not cached and cached_again and again is first


def test_use_cache_false_recomputes_and_stores_the_new_result(request_):
    caches = RunCaches()
    first, _ = run_attribution(request_, caches)
    again, cached = run_attribution(request_, caches, use_cache=False)
    assert not cached and again is not first and caches.get(request_) is again
    assert again.scores() == pytest.approx(first.scores())


def test_progress_reports_every_forward_pass_of_the_round(request_):
    recorder = Recorder()
    result, _ = run_attribution(request_, RunCaches(), recorder)
    progress = [e for e in recorder.events if e[0] == "progress"]
    n = len(result.sentences) + len(result.paragraphs)
    assert progress == [("progress", i, n) for i in range(n + 1)]
    assert any(e[0] == "phase" and "Attributing" in e[1] for e in recorder.events)


def test_stop_cancels_between_forward_passes_stores_nothing_and_frees_the_lock(request_):
    caches, cancel = RunCaches(), threading.Event()
    recorder = Recorder(on_progress=lambda done, total: done == 2 and cancel.set())
    with pytest.raises(Cancelled):
        run_attribution(request_, caches, recorder, cancel)
    assert [e for e in recorder.events if e[0] == "progress"][-1][:2] == ("progress", 2)
    assert caches.get(request_) is None and not caches.results
    assert not MODEL_LOCK.locked()


def test_streamlit_ending_the_script_mid_run_frees_the_lock(request_):
    def stop(done, total):
        if done == 1:
            raise StopException()  # what Streamlit raises in the script thread on a rerun or stop

    caches = RunCaches()
    with pytest.raises(StopException):
        run_attribution(request_, caches, Recorder(on_progress=stop))
    assert not MODEL_LOCK.locked() and caches.get(request_) is None


def test_a_session_waits_for_the_model_lock_and_says_so(request_):
    recorder = Recorder()
    out: list = []
    with MODEL_LOCK:
        worker = threading.Thread(target=lambda: out.append(run_attribution(request_, RunCaches(), recorder)))
        worker.start()
        time.sleep(0.8)
        assert worker.is_alive() and not out
    worker.join(60)
    assert out and any(e[0] == "waiting" for e in recorder.events)


def test_concurrent_sessions_take_turns_and_get_their_own_results(tiny_model_dir):
    inside, most, guard = [0], [0], threading.Lock()

    def watch(done, total):
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.002)
        with guard:
            inside[0] -= 1

    results: dict[int, object] = {}

    def session(i: int) -> None:
        req = RunRequest(EXAMPLE.context, f"Question {i}: when was it lit?", str(tiny_model_dir), "loo",
                         (("paragraphs", False),), response=f"Answer number {i}.")
        results[i] = run_attribution(req, RunCaches(), Recorder(on_progress=watch))[0]

    threads = [threading.Thread(target=session, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert most[0] == 1  # never two runs on the model at once
    for i, result in results.items():
        assert result.question == f"Question {i}: when was it lit?" and result.response == f"Answer number {i}."
    assert len(results) == 3


def test_a_part_of_a_generated_response_reuses_its_token_ids(request_):
    caches = RunCaches()
    generated, _ = run_attribution(request_.but(response=""), caches)
    assert "generate_s" in generated.timings
    response = caches.generated(request_.but(response=""))
    assert response is not None and response.token_ids
    part = request_.but(response=generated.response, response_span=(0, max(1, len(generated.response) // 2)))
    assert caches.known_response(part) is response
    result, cached = run_attribution(part, caches)
    assert not cached and result.response == generated.response and result.response_span == part.response_span
    assert 0 < result.response_tokens <= generated.response_tokens
    # the whole response, written out, is the same run as "generate"
    assert run_attribution(request_.but(response=generated.response), caches) == (generated, True)
