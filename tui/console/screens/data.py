"""Screen 7: data on the network: the datasets, this node's validation tasks, data earnings.

The registry comes from the node's ``datasets`` command (the coordinator's), asked when the
screen shows and again every few seconds while it does: validations finish on the network's
clock, not the console's.
"""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import DataTable, Static

from core.api.commands import GetDatasets
from core.api.data import DatasetInfo, DatasetList
from core.api.views import NodeSnapshot
from tui.console.host import NODE_ERRORS
from tui.console.screens.base import NodeScreen
from tui.console.widgets.common.chrome import footer, header
from tui.console.widgets.common.text import set_text
from tui.console.widgets.common.unavailable import Unavailable
from tui.format import date_time, omnit_label

NO_DATA = "waiting for the datasets from the network"
# In place of an empty table: the registry answered and holds nothing yet.
NO_DATASETS = "no datasets on the network yet (contribute one with the command below)"
DATA_SECONDS = 10.0
HOW_TO = (
    "contribute: omnitensor contribute-data --dataset NAME --path PATH\n"
    "validate:   omnitensor contribute-data --validation"
)


def data_summary(listing: DatasetList, own_id: str | None) -> Content:
    """This node's part on one line: what it contributed, validates, earned."""
    mine = [d for d in listing.datasets if d.contributor == own_id]
    open_tasks = [t for t in listing.tasks if t.state == "open"]
    parts: list[Content | str | tuple[str, str]] = [
        ("earned from data ", "$text-muted"),
        (omnit_label(listing.earned), "bold"),
        "  ·  ",
        ("contributed ", "$text-muted"),
        f"{len(mine)} dataset(s), {sum(d.paid_records for d in mine)} records paid",
        "  ·  ",
        ("validation tasks ", "$text-muted"),
        f"{len(listing.tasks)} ({len(open_tasks)} open)",
    ]
    if listing.upload is not None:
        parts += ["  ·  ", ("upload in progress ", "$warning"), listing.upload.dataset]
    return Content.assemble(*parts)


def validators_cell(dataset: DatasetInfo) -> str:
    if not dataset.validators:
        return "-"
    return ", ".join(f"{v.node_id[:8]} {v.state}" for v in dataset.validators)


class DataScreen(NodeScreen):
    """The dataset registry as the coordinator has it, and this node's part in it."""

    SUB_TITLE = "Data"
    BINDING_GROUP_TITLE = "Data"
    BINDINGS = [
        Binding("r", "reload", "Reload", tooltip="Ask the network again now.", id="data-reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.listing: DatasetList | None = None
        self._own_id: str | None = None

    def compose(self) -> ComposeResult:
        yield header()
        yield Unavailable(NO_DATA, id="data-unavailable")
        with Vertical(id="data"):
            yield Static(id="data-summary", markup=False)
            datasets: DataTable[str] = DataTable(
                id="datasets", cursor_type="row", zebra_stripes=True
            )
            datasets.add_columns(
                "Dataset", "Kind", "Records", "Accepted", "State", "Contributor", "Validators"
            )
            yield datasets
            yield Static(NO_DATASETS, id="datasets-empty", markup=False)
            tasks: DataTable[str] = DataTable(id="data-tasks", cursor_type="row")
            tasks.add_columns("Task", "Dataset", "Records", "State", "Deadline")
            yield tasks
            yield Static(HOW_TO, id="data-howto", markup=False)
        yield footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(DATA_SECONDS, self._fetch_if_showing)
        self.query_one("#data").display = False
        self.query_one("#datasets").border_title = "Datasets"
        self.query_one("#data-tasks").border_title = "Your validation tasks"

    def on_screen_resume(self) -> None:
        self.fetch_datasets()

    def action_reload(self) -> None:
        self.fetch_datasets()

    def _fetch_if_showing(self) -> None:
        if self.is_current:
            self.fetch_datasets()

    @work(exclusive=True, group="datasets", exit_on_error=False, description="Datasets")
    async def fetch_datasets(self) -> None:
        try:
            listing = await self.omni.client.command(GetDatasets(limit=100))
        except NODE_ERRORS as exc:
            self.query_one(Unavailable).set_reason(str(exc))
            self.query_one(Unavailable).display = True
            self.query_one("#data").display = False
            return
        self.show_listing(listing)

    def show_snapshot(self, snapshot: NodeSnapshot) -> None:
        # "(you)" needs the node's id: shown again once the first snapshot has it.
        if snapshot.node.id != self._own_id and self.listing is not None:
            self.show_listing(self.listing)

    def show_listing(self, listing: DatasetList) -> None:
        self.listing = listing
        self.query_one(Unavailable).display = False
        self.query_one("#data").display = True
        own_id = self._own_id = self.snapshot.node.id if self.snapshot is not None else None
        set_text(self.query_one("#data-summary", Static), data_summary(listing, own_id))
        table = self.query_one("#datasets", DataTable)
        table.clear()
        for dataset in listing.datasets:
            who = dataset.contributor_name or dataset.contributor[:12]
            if dataset.contributor == own_id:
                who += " (you)"
            table.add_row(
                dataset.name,
                dataset.kind.split("-")[0],
                str(dataset.records),
                str(dataset.accepted) if dataset.state == "validated" else "-",
                dataset.state,
                who,
                validators_cell(dataset),
                key=dataset.name,
            )
        table.display = bool(listing.datasets)
        self.query_one("#datasets-empty").display = not listing.datasets
        tasks = self.query_one("#data-tasks", DataTable)
        tasks.clear()
        for task in listing.tasks:
            tasks.add_row(
                task.task_id,
                task.dataset,
                str(task.records),
                task.state,
                date_time(task.deadline_ts),
                key=task.task_id,
            )
        tasks.display = bool(listing.tasks)
