"""The leaderboard web app (gradio 6): rankings, parameter tracks, a Pareto page per task, submissions, About.

``build_app(store)`` returns a ``gr.Blocks``; all logic is in :class:`Leaderboard` (plain methods, unit-tested) and the
modules it calls. ``app_from_env()`` builds the app the Space runs (configuration from environment variables).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from ...elue.score.reference import load_reference
from ...elue.tasks import ElueTask
from ...leaderboard.lengths_job import web_lengths
from ...leaderboard.ranking import AXES, TRACK_NAMES, Filters
from ...leaderboard.seed import seed_store
from ...leaderboard.store import StoreError, open_store
from ...leaderboard.submit import DEFAULT_UPLOAD_LIMITS, SubmitError, TryAgainLater, UploadLimits, submit_file
from .identity import SIGN_IN_NEEDED, Identities
from .texts import SUBMIT_HELP, UNRANKED_HELP, about_markdown, escape_markdown
from .views import (
    AXIS_TITLES,
    ELUE_TASKS,
    SERIES_COLORS,
    elue_frame,
    entry_frame,
    metric_title,
    pareto_frames,
    task_frame,
    track_frame,
    unranked_frame,
    validation_frame,
)

logger = logging.getLogger(__name__)

__all__ = ["SOURCE_CHOICES", "AXIS_CHOICES", "Leaderboard", "build_app", "app_from_env", "launch", "DATA_DIR_ENV"]

DATA_DIR_ENV = "ELUE_DATA_DIR"
#: Source filter labels shown in the UI -> entry sources.
SOURCE_CHOICES = {"submissions": "submission", "from the papers": "paper", "reference curve": "reference"}
AXIS_CHOICES = {"FLOPs": "mflops", "Parameters": "params"}
#: Position of the first task view in :meth:`Leaderboard.views` (header, ELUE table, four track tables, the table of
#: unranked submissions first).
UNRANKED_VIEW = 2 + len(TRACK_NAMES)
TASK_VIEWS = UNRANKED_VIEW + 1


class Leaderboard:
    """What the app does, without gradio: read the store, build every view, submit uploads.

    The token-length check never tokenises in this process (:mod:`elue_hf.leaderboard.lengths_job`): the lengths come
    from the cache next to the store, filled by ``elue-hf leaderboard-prepare`` in a subprocess started here
    (``prepare_lengths``) or by the operator; until then an upload that needs them is asked to try again."""

    def __init__(self, store, gold=None, reference=None, limits: UploadLimits = DEFAULT_UPLOAD_LIMITS,
                 seed: bool = True, tokenizer_roots=(), verify_dir=None, identities: Identities | None = None,
                 prepare_lengths: bool = True):
        self.store = store
        self.identities = identities or Identities()
        self.gold = gold
        self.curves = reference if isinstance(reference, Mapping) else load_reference(reference)
        self.limits = limits
        self.tokenizer_roots = list(tokenizer_roots)
        self.lengths, self.lengths_job = web_lengths(store, gold, self.tokenizer_roots, start=prepare_lengths)
        self.verify_dir = verify_dir
        if seed:
            seed_store(store, self.curves)

    # ------------------------------------------------------------------------------------------------ views

    @staticmethod
    def filters(search: str = "", sources: Sequence[str] | None = None, verified_only: bool = False) -> Filters:
        labels = list(SOURCE_CHOICES) if sources is None else list(sources)
        unknown = [s for s in labels if s not in SOURCE_CHOICES]
        if unknown:
            raise ValueError(f"unknown source filter {unknown}; choose from {list(SOURCE_CHOICES)}")
        return Filters(search=search or "", sources=frozenset(SOURCE_CHOICES[s] for s in labels),
                       verified_only=bool(verified_only))

    def header(self, entries) -> str:
        subs = sum(e.source == "submission" for e in entries)
        scoring = "open" if self.gold is not None else "closed (no gold test labels configured)"
        note = ""
        if getattr(self.store, "last_sync_error", None):
            note += "\n\n**The Hub results repo could not be read; showing the local copy.**"
        quarantined = len(getattr(self.store, "skipped_files", None) or ())
        if quarantined:
            note += (f"\n\n**{quarantined} file(s) in the Hub results repo were refused and quarantined** "
                     "(invalid entries or verification requests; the maintainers are told in the logs).")
        if getattr(self.store, "last_push_error", None):
            note += "\n\n**Verification results are waiting to be written to the Hub results repo.**"
        store = escape_markdown(self.store.public_description())
        return (f"# ELUE leaderboard\nEfficient Language Understanding Evaluation: quality and FLOPs. "
                f"{len(entries)} entries ({subs} submission{'s' * (subs != 1)}, {len(entries) - subs} from the "
                f"papers and the reference curve). Store: {store}. Submissions: {scoring}.{note}")

    def task_view(self, entries, task: ElueTask, axis: str, filters: Filters):
        points, lines, hidden = pareto_frames(entries, task, axis, self.curves, filters)
        caption = f"{metric_title(task)} x100 vs {AXIS_TITLES[axis]} on {task.name}."
        if hidden:
            caption += f" {hidden} point(s) without a value on this axis are listed in the table only."
        if axis == "mflops" and self.curves[task.key].provisional:
            caption += " IMDb reference FLOPs are provisional."
        return points, lines, task_frame(entries, task, axis, filters), caption

    def views(self, search: str = "", sources=None, verified_only: bool = False, axis_label: str = "FLOPs") -> list:
        """Every view, in the order of :func:`build_app`'s outputs: header, ELUE table, four track tables, the
        unranked submissions, then per task (points, lines, table, caption)."""
        axis = AXIS_CHOICES.get(axis_label, axis_label)
        if axis not in AXES:
            raise ValueError(f"unknown axis {axis_label!r}; choose from {list(AXIS_CHOICES)}")
        filters = self.filters(search, sources, verified_only)
        entries = self.store.entries()
        out = [self.header(entries), elue_frame(entries, filters)]
        out += [track_frame(entries, track, filters) for track in TRACK_NAMES]
        out.append(unranked_frame(entries, filters))
        for task in ELUE_TASKS:
            out += list(self.task_view(entries, task, axis, filters))
        return out

    # ----------------------------------------------------------------------------------------------- submit

    def submit(self, upload, submitter: str = "", store_result: bool = True, discard_upload: bool = False,
               identity: str | None = None) -> tuple[str, pd.DataFrame]:
        """(status markdown, the entry's points) for an uploaded file; errors become one plain sentence. Everything
        from the upload is escaped before it is shown. ``discard_upload``: delete the uploaded file afterwards
        (the app's temporary copy). ``identity``: who uploads, as :meth:`Identities.resolve` gives it (None: none
        trusted, so ``anonymous`` where allowed, else the upload is refused); validating and submitting share its
        daily limit."""
        if upload is None:
            return "**Nothing uploaded.** Choose a submission zip first.", entry_frame_empty()
        path = upload if isinstance(upload, (str, Path)) else getattr(upload, "name", None)
        identity = identity or self.identities.resolve()
        try:
            if identity is None:
                raise SubmitError(SIGN_IN_NEEDED)
            outcome = submit_file(self.store, path, self.gold, reference=self.curves, limits=self.limits,
                                  submitter=submitter or "", store_result=store_result, identity=identity,
                                  tokenizer_roots=self.tokenizer_roots, verify_dir=self.verify_dir,
                                  lengths=self.lengths)
        except TryAgainLater as err:
            return f"**Not checked yet:** {escape_markdown(err)}", entry_frame_empty()
        except SubmitError as err:
            return f"**Submission refused:** {escape_markdown(err)}", entry_frame_empty()
        except StoreError as err:
            logger.error("leaderboard store failed: %s", err)
            return "**The leaderboard store failed; nothing was stored. Please try again later.**", entry_frame_empty()
        except Exception:  # a bug, not the user's fault: one plain sentence here, the traceback in the logs
            logger.exception("unexpected error while processing an upload")
            return "**The submission could not be processed (an internal error was logged).**", entry_frame_empty()
        finally:
            if discard_upload and path is not None:
                discard(path)
        status = "  \n".join(escape_markdown(line) for line in outcome.summary().split("\n"))
        if outcome.entry is None:
            return status, validation_frame(outcome.submission)
        return status, entry_frame(outcome.entry)


def discard(path) -> None:
    """Delete an uploaded file (never a directory); a file already gone is fine."""
    try:
        if Path(path).is_file():
            Path(path).unlink()
    except OSError as err:
        logger.warning("could not delete the upload %s: %s", path, err)


def entry_frame_empty() -> pd.DataFrame:
    return pd.DataFrame(columns=["Task", "Point", "Metric", "MFLOPs", "Reference", "vs reference", "MParams", "FLOPs"])


def build_app(store, gold=None, reference=None, limits: UploadLimits = DEFAULT_UPLOAD_LIMITS, seed: bool = True,
              title: str = "ELUE leaderboard", tokenizer_roots=(), verify_dir=None,
              identities: Identities | None = None):
    """The gradio app over ``store`` (see :class:`Leaderboard` for the arguments). With ``identities.oauth`` the
    Submit tab has the Hub's "Sign in" button (a Space needs ``hf_oauth: true`` in its card); with submit tokens, a
    token box."""
    import gradio as gr

    board = Leaderboard(store, gold, reference, limits, seed, tokenizer_roots, verify_dir, identities)
    views = board.views()
    with gr.Blocks(title=title) as demo:
        header = gr.Markdown(views[0])
        with gr.Row():
            search = gr.Textbox(label="Search models", placeholder="e.g. ElasticBERT", scale=3)
            sources = gr.CheckboxGroup(list(SOURCE_CHOICES), value=list(SOURCE_CHOICES), label="Show", scale=3)
            verified = gr.Checkbox(label="verified FLOPs only (model re-run by the server)", value=False, scale=1)
        outputs = [header]
        with gr.Tabs():
            with gr.Tab("ELUE Score", id="elue"):
                outputs.append(gr.Dataframe(views[1], interactive=False, show_search="filter", pinned_columns=2,
                                            label="Ranked by ELUE score (mean over the six tasks of performance "
                                                  "minus ElasticBERT-base at the same FLOPs): verified entries and "
                                                  "published rows only"))
            for i, track in enumerate(TRACK_NAMES):
                with gr.Tab(f"ELUE ({track} params)", id=f"track-{track}"):
                    outputs.append(gr.Dataframe(views[2 + i], interactive=False, show_search="filter",
                                                pinned_columns=3, label=f"At most {track} parameters, ranked by "
                                                                        "average performance"))
            with gr.Tab("Not ranked", id="unranked"):
                gr.Markdown(UNRANKED_HELP)
                outputs.append(gr.Dataframe(views[UNRANKED_VIEW], interactive=False, show_search="filter",
                                            pinned_columns=2, label="Submissions not ranked (not verified by a "
                                                                    "re-run, or not scored on the ELUE test set)"))
            with gr.Tab("Tasks", id="tasks"):
                axis = gr.Radio(list(AXIS_CHOICES), value="FLOPs", label="Pareto x axis")
                with gr.Tabs():
                    for j, task in enumerate(ELUE_TASKS):
                        name = task.name
                        points, lines, table, caption = views[TASK_VIEWS + 4 * j: TASK_VIEWS + 4 * j + 4]
                        with gr.Tab(name, id=f"task-{task.key}"):
                            outputs.append(gr.ScatterPlot(
                                points, x="x", y="performance", color="series", color_map=SERIES_COLORS,
                                tooltip=["model", "point", "source"], title=f"{name}: operating points",
                                x_title=AXIS_TITLES["mflops"], y_title=metric_title(task), height=360,
                                elem_id=f"points-{task.key}"))
                            outputs.append(gr.LinePlot(
                                lines, x="x", y="performance", color="line", color_map=SERIES_COLORS,
                                title=f"{name}: reference curve and Pareto frontier",
                                x_title=AXIS_TITLES["mflops"], y_title=metric_title(task), height=300,
                                elem_id=f"lines-{task.key}"))
                            outputs.append(gr.Dataframe(table, interactive=False, show_search="filter",
                                                        label=f"{name} operating points"))
                            outputs.append(gr.Markdown(caption))
            with gr.Tab("Submit", id="submit"):
                gr.Markdown(SUBMIT_HELP + "\n" + board.identities.describe())
                if board.identities.oauth:
                    gr.LoginButton()
                upload = gr.File(label="Submission zip", file_types=[".zip"], type="filepath",
                                 elem_id="submission-file")
                submitter = gr.Textbox(label="Submitter (optional; shown in the tables)", max_length=100)
                token = gr.Textbox(label="Submit token", type="password", max_length=200,
                                   visible=bool(board.identities.tokens), elem_id="submit-token")
                with gr.Row():
                    submit_btn = gr.Button("Submit", variant="primary")
                    validate_btn = gr.Button("Validate only")
                status = gr.Markdown(elem_id="submit-status")
                result = gr.Dataframe(entry_frame_empty(), interactive=False, label="Your operating points")
            with gr.Tab("About", id="about"):
                gr.Markdown(about_markdown())

        filters = [search, sources, verified, axis]

        plots = [outputs[TASK_VIEWS + 4 * k + j] for k in range(len(ELUE_TASKS)) for j in (0, 1)]

        def refresh(search_text, source_labels, verified_only, axis_label):
            return board.views(search_text, source_labels, verified_only, axis_label)

        def retitle(axis_label):
            # A separate event: gradio 6.31 drops a new value sent together with a new x_title.
            return [gr.update(x_title=AXIS_TITLES[AXIS_CHOICES[axis_label]])] * len(plots)

        def identity_of(token_text, request, profile):
            headers = getattr(request, "headers", None)
            return board.identities.resolve(profile, headers, token_text or "")

        def do_submit(upload_path, who, token_text, search_text, source_labels, verified_only, axis_label,
                      request=None, profile=None):
            status = board.submit(upload_path, who, store_result=True, discard_upload=True,
                                  identity=identity_of(token_text, request, profile))
            return [*status, *refresh(search_text, source_labels, verified_only, axis_label)]

        def do_validate(upload_path, who, token_text, request=None, profile=None):
            return list(board.submit(upload_path, who, store_result=False, discard_upload=True,
                                     identity=identity_of(token_text, request, profile)))

        for handler in (do_submit, do_validate):  # gradio injects the request and the signed-in user by annotation
            handler.__annotations__.update(request=gr.Request, profile=gr.OAuthProfile | None)

        demo.load(refresh, filters, outputs, api_name="refresh")
        for trigger in (search.submit, sources.change, verified.change):
            trigger(refresh, filters, outputs, api_visibility="private")
        axis.change(refresh, filters, outputs, api_visibility="private").then(
            retitle, [axis], plots, api_visibility="private")
        def clear_status():  # the previous upload's status never lingers next to a new one
            return "*Checking the upload...*", entry_frame_empty()

        for button, action, inputs, targets, name in (
            (submit_btn, do_submit, [upload, submitter, token, *filters], [status, result, *outputs], "submit"),
            (validate_btn, do_validate, [upload, submitter, token], [status, result], "validate"),
        ):
            button.click(clear_status, None, [status, result], queue=False, api_visibility="private").then(
                action, inputs, targets, api_name=name)
    demo.board = board  # for tests and scripts
    return demo


def app_from_env(env: Mapping[str, str] | None = None):
    """The app configured from the environment, as the Space runs it.

    ``ELUE_RESULTS_REPO`` (Hub dataset store; ``HF_TOKEN`` for writing), ``ELUE_LEADERBOARD_DB`` (SQLite path, or the
    Hub store's cache), ``ELUE_DATA_DIR`` (gold labels: ELUE data with ``<Task>/test_full.tsv``; without it
    submissions are closed), ``ELUE_HF_REFERENCE`` (reference-curve JSON), ``ELUE_TOKENIZER_DIR`` (tokenizers by Hub
    id for the token-length check), ``ELUE_VERIFY_DIR`` (where submissions naming a model are kept and re-run by a
    background worker; unset: no re-runs), ``ELUE_MODEL_DIR`` (models by Hub id, tried before the Hub),
    ``ELUE_VERIFY_LEASE_HOURS`` (how long a claimed job stays this worker's, default 6);
    who may submit (:meth:`Identities.from_env`): ``SPACE_ID`` (set by Spaces: the Hub's OAuth login),
    ``ELUE_IDENTITY_HEADER``, ``ELUE_SUBMIT_TOKENS``, ``ELUE_ALLOW_ANONYMOUS``."""
    env = os.environ if env is None else env
    store = open_store(env.get("ELUE_LEADERBOARD_DB"), env.get("ELUE_RESULTS_REPO"), token=env.get("HF_TOKEN"),
                       lease_hours=env.get("ELUE_VERIFY_LEASE_HOURS") or None)
    gold = env.get(DATA_DIR_ENV) or None
    roots = [env["ELUE_TOKENIZER_DIR"]] if env.get("ELUE_TOKENIZER_DIR") else []
    verify_dir = env.get("ELUE_VERIFY_DIR") or None
    if verify_dir and gold:  # re-runs in a background thread, one at a time
        from ...verify.worker import start_background_worker

        models = [env["ELUE_MODEL_DIR"]] if env.get("ELUE_MODEL_DIR") else []
        start_background_worker(store, gold, model_roots=models, tokenizer_roots=roots)  # claims through the store
    return build_app(store, gold=gold, reference=env.get("ELUE_HF_REFERENCE") or None, tokenizer_roots=roots,
                     verify_dir=verify_dir, identities=Identities.from_env(env))


def launch(app, host: str = "127.0.0.1", port: int | None = None, block: bool = True, quiet: bool = False,
           limits: UploadLimits = DEFAULT_UPLOAD_LIMITS):
    """Queue and launch ``app``; uploads above the limit are refused by gradio before they reach the app."""
    app.queue(default_concurrency_limit=1)
    return app.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=quiet,
                      max_file_size=limits.max_upload_bytes, show_error=True)
