"""Results: the queryable view over collected tables (one row per done experiment/iteration).

For each (id, iteration) the first successful record wins; an id with no success shows
its latest failure. Duplicates (a record seen twice, or an id computed twice by racing
processes) therefore never reach the table. Rows come in stored order, or in the order
of the ids given to ``ordered`` (a spec's definition order), whatever order parallel
workers finished in.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .contract import DONE, FAILED, STATUS_NAMES
from .errors import ParameterError, ResultError
from .query import mask, parse
from .store.table import PICKLED, Table, float_exact

RESERVED = ("id", "iteration")  # parameters with these names show as param.<name>


def _keep_big_ints(parts: list[pd.DataFrame]) -> None:
    """Before concatenating per-table frames: an int column beyond 2**53 that some part
    lacks, or holds as floats, would become float in the concatenation: make it objects."""
    names = {c for p in parts for c in p.columns}
    for name in names:
        cols = [p[name] for p in parts if name in p.columns]
        big = any(c.dtype.kind in "iu" and not float_exact(c.to_numpy()) for c in cols)
        if big and (len(cols) < len(parts) or any(c.dtype.kind not in "iu" for c in cols)
                    or len({c.dtype for c in cols}) > 1):
            for p in parts:
                if name in p.columns:
                    p[name] = p[name].astype(object)


def _inverse(order: np.ndarray) -> np.ndarray | None:
    """The permutation undoing ``order`` (None when ``order`` changes nothing)."""
    if not (np.diff(order) < 0).any():
        return None
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    return back


class Results:
    """Results of a batch or research: ``.df``, filters, values by name, failures."""

    def __init__(self, tables: Iterable[Table] = (), *, iterations: bool = False,
                 allow_pickle: bool = False, problems: Mapping[str, str] | None = None
                 ) -> None:
        self._setup(list(tables), iterations, allow_pickle, dict(problems or {}), None, None)

    def _setup(self, tables: list[Table], iterations: bool, allow_pickle: bool,
               problems: dict[str, str], selection: pd.DataFrame | None,
               order: Sequence[str] | None) -> None:
        self._tables = tables
        self._iterations = iterations
        self._allow_pickle = allow_pickle
        self.problems = problems
        """Files that could not be read, by name, with the reason."""
        self._sel = self._select() if selection is None else selection
        self._order = order
        self._sorted: pd.DataFrame | None = None
        self._df: pd.DataFrame | None = None
        self._pos: dict[str, tuple[int, int]] | None = None
        self._param_cols: list[str] = []
        self._present: dict[str, np.ndarray] = {}

    # -- selection ------------------------------------------------------------------
    def _select(self) -> pd.DataFrame:
        if not self._tables:
            return pd.DataFrame({"t": np.empty(0, np.int64), "row": np.empty(0, np.int64),
                                 "id": np.empty(0, object), "iteration": np.empty(0, np.int64),
                                 "status": np.empty(0, np.uint8), "finished": np.empty(0),
                                 "complete": np.empty(0, bool)})
        ts = self._tables
        meta = pd.DataFrame({
            "t": np.concatenate([np.full(len(t), i, np.int64) for i, t in enumerate(ts)]),
            "row": np.concatenate([np.arange(len(t), dtype=np.int64) for t in ts]),
            "id": np.concatenate([t.ids for t in ts]).astype(object),
            "iteration": np.concatenate([t.iteration for t in ts]),
            "status": np.concatenate([t.status for t in ts]),
            "finished": np.concatenate([t.finished for t in ts]),
        })
        if not (meta["status"].to_numpy() == FAILED).any():
            iteration = meta["iteration"].to_numpy()
            same = len(iteration) == 0 or iteration.min() == iteration.max()
            dup = meta["id"].duplicated() if same else meta.duplicated(["id", "iteration"])
            if not dup.to_numpy().any():  # the common case: nothing to choose between
                meta["complete"] = True
                return meta  # already in (t, row) order
            order = np.argsort(meta["finished"].to_numpy(), kind="stable")  # earliest wins
            sel = meta.iloc[order].drop_duplicates(["id", "iteration"], keep="first")
            sel = sel.assign(complete=True)
        else:
            sel = self._select_attempts(meta, ts)
        return sel.sort_values(["t", "row"], kind="stable").reset_index(drop=True)

    @staticmethod
    def _select_attempts(meta: pd.DataFrame, ts: Sequence[Table]) -> pd.DataFrame:
        """With failures: one attempt per id (the records of one execution share its start
        time). The earliest complete attempt wins; else the latest failed one, whose rows
        saved before the failure still show, but the id counts as failed."""
        meta = meta.assign(started=np.concatenate([t.started for t in ts]))
        failed_attempt = (meta.assign(f=meta["status"] == FAILED)
                          .groupby(["id", "started"], sort=False)["f"].transform("any"))
        meta = meta.assign(complete=~failed_attempt.to_numpy())
        complete = meta["complete"].to_numpy()
        finished = meta["finished"].to_numpy()
        key = np.where(complete, finished, -finished)
        order = np.lexsort((key, ~complete))
        best = meta.iloc[order].drop_duplicates("id", keep="first")[["id", "started"]]
        chosen = meta.merge(best, on=["id", "started"], how="inner")
        chosen = chosen.sort_values("finished", kind="stable")
        chosen = chosen.drop_duplicates(["id", "iteration", "status"], keep="first")
        return chosen.drop(columns="started")

    def _rows(self) -> pd.DataFrame:
        """The selection in table order: the ids given to ``ordered`` first, in that order
        (an id's iterations ascending), then the others in stored order."""
        if self._sorted is None:
            sel, order = self._sel, self._order
            self._sorted = sel
            if order is not None and len(sel):
                index = order if isinstance(order, pd.Index) else pd.Index(order, dtype=object)
                if not index.is_unique:
                    index = index.unique()
                pos = index.get_indexer(sel["id"].to_numpy()).astype(np.int64)
                rest = pos < 0
                pos[rest] = len(index) + np.flatnonzero(rest)
                perm = np.lexsort((sel["iteration"].to_numpy(), pos))  # stable
                if (np.diff(perm) < 0).any():
                    self._sorted = sel.iloc[perm].reset_index(drop=True)
        return self._sorted

    def _done(self) -> pd.DataFrame:
        """Rows with a value: of complete attempts, and those a failed attempt saved."""
        rows = self._rows()
        return rows[rows["status"].to_numpy() == DONE]

    def _complete(self, rows: pd.DataFrame | None = None) -> pd.DataFrame:
        """Done rows of complete attempts (of ``rows``; by default in table order)."""
        rows = self._rows() if rows is None else rows
        return rows[(rows["status"].to_numpy() == DONE) & rows["complete"].to_numpy()]

    def _derive(self, sel: pd.DataFrame, order: Sequence[str] | None = None) -> Results:
        derived = Results.__new__(Results)
        derived._setup(self._tables, self._iterations, self._allow_pickle, self.problems,
                       sel.reset_index(drop=True), order)
        return derived

    def ordered(self, ids: Sequence[str]) -> Results:
        """These results with the rows of ``ids`` first, in that order (an id's
        iterations ascending), then the rest in stored order. A Batch or Research orders
        its results by the order its experiments were defined in."""
        return self._derive(self._sel, ids)

    def _pickle_rule(self, table: Table) -> bool | None:
        """Whether this table's pickles may be read: allow_pickle, and a file of yours
        (None: refused because of its owner)."""
        if not self._allow_pickle:
            return False
        owner = table.attrs.get("owner")
        return True if owner is None or owner == os.geteuid() else None

    def _unpickle(self, table: Table, *, warn: bool = True) -> bool | None:
        """``_pickle_rule``, saying (if ``warn``) why another user's pickles are not read."""
        rule = self._pickle_rule(table)
        if rule is None and warn:
            warnings.warn(f"{table.attrs.get('file', 'a results file')} belongs to uid "
                          f"{table.attrs.get('owner')}, not to you: its pickled values are "
                          f"not read (shown as {PICKLED!r}); copy the file if you trust it",
                          stacklevel=4)
        return rule

    # -- tables -----------------------------------------------------------------------
    @property
    def df(self) -> pd.DataFrame:
        """Done rows: ``id``, parameters, (``iteration``), result values; one row each."""
        if self._df is None:
            self._df = self._build_df(self._done())
        return self._df.copy(deep=False)

    def _build_df(self, sel: pd.DataFrame) -> pd.DataFrame:
        parts = []
        params: dict[str, None] = {}
        present: list[dict[str, np.ndarray]] = []
        ts, all_rows = sel["t"].to_numpy(), sel["row"].to_numpy()
        order = np.argsort(ts, kind="stable")  # read table by table, then put back in order
        ts, all_rows = ts[order], all_rows[order]
        cuts = np.flatnonzero(np.diff(ts)) + 1
        for idx, first in zip(np.split(all_rows, cuts), np.r_[0, cuts], strict=True):
            if not len(idx):
                continue
            table = self._tables[int(ts[first])]
            cols: dict[str, Any] = {"id": table.ids[idx].astype(object)}
            has: dict[str, np.ndarray] = {}
            param_ints = table.int_names("params")
            for name, arr in table.decoded("params", False).items():
                col = name if name not in RESERVED else f"param.{name}"
                while col in cols:  # e.g. a parameter named 'param.id' beside 'id'
                    col = f"param.{col}"
                vals = arr[idx]
                given = table.presence("params", name)[idx]
                if name in param_ints and vals.dtype.kind == "f" and given.all():
                    vals = vals.astype(np.int64)
                cols[col] = vals
                params[col] = None
                has[col] = given
            if self._iterations:
                cols["iteration"] = table.iteration[idx]
            ints = table.int_names("values")
            rule = self._pickle_rule(table)  # said once per table: when it is decoded
            rule = self._unpickle(table, warn=not table.has_decoded("values", rule))
            for name, arr in table.decoded("values", rule).items():
                col = name
                while col in cols:  # a value named as a parameter (or 'result.<it>')
                    col = f"result.{col}"
                present_here = table.presence("values", name)[idx]
                vals = arr[idx]
                if name in ints and vals.dtype.kind == "f" and present_here.all():
                    vals = vals.astype(np.int64)  # NaN only filled rows not selected here
                cols[col] = vals
                has[col] = present_here
            parts.append(pd.DataFrame(cols))
            present.append(has)
        if not parts:  # no rows: the columns all the tables have, empty
            return self._empty_df()
        self._param_cols = list(params)
        if len(parts) > 1:
            _keep_big_ints(parts)
        df = pd.concat(parts, ignore_index=True, sort=False) if len(parts) > 1 else parts[0]
        present_parts: dict[str, list[np.ndarray]] = {}
        for has, part in zip(present, parts, strict=True):
            for col in df.columns:
                if col not in ("id", "iteration"):
                    present_parts.setdefault(col, []).append(
                        has.get(col, np.zeros(len(part), bool)))
        self._present = {k: np.concatenate(v) for k, v in present_parts.items()}
        back = _inverse(order)
        if back is not None:
            df = df.take(back).reset_index(drop=True)
            self._present = {k: v[back] for k, v in self._present.items()}
        return df

    def _empty_df(self) -> pd.DataFrame:
        """A table without rows, with the columns the tables hold (params first)."""
        params: dict[str, None] = {}
        values: dict[str, None] = {}
        for table in self._tables:
            for col in table.params:
                params[col.name if col.name not in RESERVED else f"param.{col.name}"] = None
        for table in self._tables:
            for col in table.values:
                values[col.name if col.name not in params else f"result.{col.name}"] = None
        self._param_cols = list(params)
        names = ["id", *params, *(["iteration"] if self._iterations else []), *values]
        self._present = {n: np.zeros(0, bool) for n in names if n not in ("id", "iteration")}
        return pd.DataFrame({n: pd.Series([], dtype=np.int64 if n == "iteration" else object)
                             for n in names})

    def to_df(self, pivot: bool = True, *, name: str | Sequence[str] | None = None,
              iterations: int | Sequence[int] | None = None, **conditions: Any
              ) -> pd.DataFrame:
        """The table, filtered: ``name`` (saved names to keep), ``iterations``, and
        conditions on parameters (``a=2``, ``b__ge=3``, ...). ``pivot=False``: one row per
        saved value, with columns id, parameters, iteration, ``name``, ``value``."""
        df = self.df
        present = self._present
        params = [c for c in self._param_cols if c in df.columns]
        values = [c for c in df.columns if c not in params and c not in ("id", "iteration")]
        keep = np.ones(len(df), dtype=bool)
        for cond in parse(conditions):
            if cond.name not in params:
                raise ParameterError(f"no parameter named {cond.name!r}; parameters are: "
                                     f"{', '.join(params) or '(none)'} (filter saved values "
                                     "with results.filter)")
            keep &= mask(df[cond.name], cond) & self._given(cond.name, len(df))
        if iterations is not None:
            if "iteration" not in df.columns:
                raise ParameterError("iterations=: these results have no iterations (a Batch "
                                     "stores one row per run)")
            its = [iterations] if isinstance(iterations, (int, np.integer)) else list(iterations)
            keep &= df["iteration"].isin(its).to_numpy()
        if name is not None:
            names = [name] if isinstance(name, str) else list(name)
            unknown = [n for n in names if n not in values]
            if unknown:
                raise ParameterError(f"name={unknown[0]!r} was never saved; saved names: "
                                     f"{', '.join(values) or '(none)'}")
            keep &= np.logical_or.reduce([present[n] for n in names])
            values = names
        base = [c for c in df.columns if c not in values and c in ("id", "iteration", *params)]
        if pivot:
            return df.loc[keep, [*base, *values]].reset_index(drop=True)
        frames = []
        for k, col in enumerate(values):
            rows = np.flatnonzero(keep & present[col])
            part = df.iloc[rows][base].copy()
            part["name"] = col
            part["value"] = df[col].to_numpy()[rows]
            part["_row"], part["_k"] = rows, k
            frames.append(part)
        if not frames:
            return pd.DataFrame(columns=[*base, "name", "value"])
        long = pd.concat(frames, ignore_index=True).sort_values(["_row", "_k"], kind="stable")
        return long.drop(columns=["_row", "_k"]).reset_index(drop=True)

    @property
    def status(self) -> pd.DataFrame:
        """Per experiment (and iteration): status, runtime, timestamps, host, error, file."""
        sel = self._rows()
        rows = []
        for t, part in sel.groupby("t", sort=True):
            table = self._tables[int(t)]
            idx = part["row"].to_numpy()
            rows.append(pd.DataFrame({
                "id": table.ids[idx].astype(object),
                "iteration": table.iteration[idx],
                "status": np.asarray(STATUS_NAMES, dtype=object)[table.status[idx]],
                "runtime": table.runtime[idx],
                "started": table.started[idx],
                "finished": table.finished[idx],
                "host": np.asarray(table.hosts, dtype=object)[table.host_codes[idx]],
                "error": [table.errors.get(int(i), "") for i in idx],
                "file": table.attrs.get("file", ""),
            }))
        if not rows:
            empty = pd.DataFrame(columns=["id", "iteration", "status", "runtime", "started",
                                          "finished", "host", "error", "file"])
            return empty if self._iterations else empty.drop(columns="iteration")
        out = pd.concat(rows, ignore_index=True) if len(rows) > 1 else rows[0]
        back = _inverse(np.argsort(sel["t"].to_numpy(), kind="stable"))  # groupby's order
        if back is not None:
            out = out.take(back).reset_index(drop=True)
        return out if self._iterations else out.drop(columns="iteration")

    @property
    def failed(self) -> pd.DataFrame:
        """Failed experiments (no successful record): their status columns, error, and
        parameters (after ``id``), as stored with the failure."""
        st = self.status
        failed = st[st["status"] == "failed"].reset_index(drop=True)
        sel = self._rows()
        sel = sel[(sel["status"] == FAILED).to_numpy()]
        params: list[pd.DataFrame] = []
        for t, part in sel.groupby("t", sort=True):
            table = self._tables[int(t)]
            idx = part["row"].to_numpy()
            cols: dict[str, Any] = {}
            ints = table.int_names("params")
            for n, a in table.decoded("params", False).items():
                col = n if n not in RESERVED else f"param.{n}"
                while col in cols or col in failed.columns:  # e.g. a parameter 'error'
                    col = f"param.{col}"
                vals = a[idx]
                if (n in ints and vals.dtype.kind == "f"
                        and table.presence("params", n)[idx].all()):
                    vals = vals.astype(np.int64)
                cols[col] = vals
            params.append(pd.DataFrame(cols, index=part.index))
        if not params:
            return failed
        if len(params) > 1:
            _keep_big_ints(params)
        table = pd.concat(params, sort=False).loc[sel.index].reset_index(drop=True)
        return pd.concat([failed[["id"]], table, failed.drop(columns="id")], axis=1)

    @property
    def ids(self) -> list[str]:
        """Ids of the done experiments, in the table's order."""
        return list(dict.fromkeys(self._complete()["id"]))

    @property
    def failed_ids(self) -> list[str]:
        """Ids whose chosen attempt failed (no complete attempt), in the table's order."""
        sel = self._rows()
        return list(dict.fromkeys(sel.loc[sel["status"] == FAILED, "id"]))

    def outcomes(self, ids: Sequence[str] | np.ndarray,
                 failed_since: np.ndarray | None = None) -> np.ndarray:
        """Per id: 1 if done, 2 if failed (its chosen attempt), 0 if neither; vectorised.
        ``failed_since`` (epoch s per id): failures that ended earlier count as 0 (a run
        submitted again after it failed is not failed while it waits or runs)."""
        index = pd.Index(np.asarray(ids, dtype=object))
        sel = self._sel
        status = sel["status"].to_numpy()
        done = index.isin(sel["id"].to_numpy()[(status == DONE) & sel["complete"].to_numpy()])
        failures = sel[status == FAILED]
        if failed_since is None:
            failed = index.isin(failures["id"].to_numpy())
        else:
            last = failures.groupby("id", sort=False)["finished"].max()
            failed = last.reindex(index).to_numpy(dtype=float) >= failed_since
        return np.where(done, 1, np.where(failed, 2, 0)).astype(np.uint8)

    def missing(self, expected: Iterable[str]) -> list[str]:
        """Which of ``expected`` have no successful result."""
        done = set(self._complete(self._sel)["id"])
        return [i for i in expected if i not in done]

    def __len__(self) -> int:
        return len(self._complete(self._sel))

    def __contains__(self, exp_id: object) -> bool:
        return exp_id in self._positions()

    def __repr__(self) -> str:
        nfail = len(self.failed_ids)
        extra = f", {len(self.problems)} unreadable files" if self.problems else ""
        return (f"<Results: {len(self.ids)} done, {nfail} failed, from {len(self._tables)} "
                f"table(s){extra}>")

    # -- one experiment -----------------------------------------------------------------
    def _positions(self) -> dict[str, tuple[int, int]]:
        """id -> (table, row) of its first done record (iteration 0 for batch style)."""
        if self._pos is None:
            done = self._complete(self._sel)  # order does not matter: no sort
            keys = zip(done["id"].tolist(), done["t"].tolist(), done["row"].tolist())
            pos: dict[str, tuple[int, int]] = {}
            for i, t, row in keys:
                pos.setdefault(i, (t, row))
            self._pos = pos
        return self._pos

    def _locate(self, exp_id: str) -> tuple[Table, int]:
        hit = self._positions().get(exp_id)
        if hit is None:
            raise KeyError(f"no successful result for id {exp_id!r}")
        return self._tables[hit[0]], hit[1]

    def result(self, exp_id: str) -> Any:
        """The value the experiment returned (KeyError if it has no successful result)."""
        table, row = self._locate(exp_id)
        allow = self._unpickle(table)
        try:
            return table.value(row, allow_pickle=bool(allow))
        except ResultError:
            if allow is None:
                raise ResultError(f"{exp_id}: its value is pickled in {table.attrs.get('file')},"
                                  f" which belongs to uid {table.attrs.get('owner')}, not to "
                                  "you: it is not unpickled; copy the file if you trust it"
                                  ) from None
            raise

    def parameters(self, exp_id: str) -> dict[str, Any]:
        """The stored parameters of an experiment, done or failed (callables as qualified
        names); KeyError if it has no record."""
        hit = self._positions().get(exp_id)
        if hit is None:
            sel = self._sel
            rows = sel[(sel["id"] == exp_id).to_numpy()]
            if not len(rows):
                raise KeyError(f"no record of id {exp_id!r}")
            hit = (int(rows["t"].iloc[-1]), int(rows["row"].iloc[-1]))
        return self._tables[hit[0]].parameters(hit[1])

    def runtime(self, exp_id: str) -> float:
        """Seconds the experiment took (KeyError if it has no successful result)."""
        table, row = self._locate(exp_id)
        return float(table.runtime[row])

    def file(self, exp_id: str) -> str | None:
        """The segment file holding the experiment's result (None if in memory)."""
        table, _ = self._locate(exp_id)
        return table.attrs.get("file")

    def error(self, exp_id: str) -> str | None:
        """The traceback of the latest failure of an experiment without success, else None."""
        sel = self._sel
        hit = sel[(sel["id"] == exp_id).to_numpy() & (sel["status"] == FAILED).to_numpy()]
        if not len(hit):
            return None
        t, row = int(hit["t"].iloc[-1]), int(hit["row"].iloc[-1])
        return self._tables[t].errors.get(row, "")

    # -- queries --------------------------------------------------------------------------
    def filter(self, **conditions: Any) -> Results:
        """Experiments whose parameters/values satisfy all conditions (``A__ge=3``, ...)."""
        df = self.df
        keep = np.ones(len(df), dtype=bool)
        for cond in parse(conditions):
            if cond.name not in df.columns:
                raise ParameterError(
                    f"no parameter or value named {cond.name!r}; columns are: "
                    f"{', '.join(map(str, df.columns))}")
            keep &= mask(df[cond.name], cond) & self._given(cond.name, len(df))
        ids = set(df["id"].to_numpy()[keep])
        sel = self._rows()
        return self._derive(sel[sel["id"].isin(ids).to_numpy()])

    def _given(self, name: str, n: int) -> np.ndarray:
        """Rows that hold ``name`` (a row without it never matches a condition on it, as
        in ``get_runs_with``; a NaN it holds is a value)."""
        return self._present.get(name, np.ones(n, dtype=bool))

    def __getitem__(self, name: str) -> pd.Series:
        """Values of one column by name, indexed by id."""
        df = self.df
        if name not in df.columns:
            raise KeyError(f"no column {name!r}; columns are: {', '.join(map(str, df.columns))}")
        return pd.Series(df[name].to_numpy(), index=pd.Index(df["id"], name="id"), name=name)

    def values(self, name: str) -> np.ndarray:
        """Values of one column as an array (numeric columns stay numeric)."""
        return self[name].to_numpy()

    @property
    def tables(self) -> Sequence[Table]:
        """The collected tables (one per segment file or journal), read-only."""
        return tuple(self._tables)
