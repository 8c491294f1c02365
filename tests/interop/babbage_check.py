#!/usr/bin/env python3
"""Reads a package Conductor loaded with babbage 0.4.0 (os-api's query engine) and checks every answer against the
package's own CSV.

    babbage_check.py --db-url <SQLAlchemy URL> --model <babbage model JSON file> --package <package folder>

babbage is the oracle: every number on the database side comes from `babbage.cube.Cube` (`aggregate`,
`members`, `facts`, with os-api's string syntax for cuts and drilldowns); no SQL is written here. The expected
numbers are computed from the CSV with the `csv` module, reading it as Conductor's loader does (DESIGN §7): the
first resource with `columnType` fields, its `encoding` and `dialect`, each field's `decimalChar`, `groupChar`
and date `format`, the empty string as a missing value. The model's columns are mapped back to CSV columns
through the loader's column names (crates/loader/src/columns.rs): each `columnType` field's name ASCII-folded,
lower-cased, runs of other characters `_`, trimmed, clashes numbered `_1`, `_2`, ...

Checks: the model serializes with babbage's JSON encoder (as its /model/ endpoint answers); the fact count and
the total of every measure; a drilldown by every attribute of every dimension, and by every dimension as a whole
(group counts and sums, and the number of cells); the members of every dimension (their count and keys equal the
CSV's distinct values); one cut (a value of one attribute; the cut's count and totals equal the CSV's filtered
ones; babbage 0.4.0 refuses every cut on a date attribute, so for a package with dates only that refusal is
recorded in the summary instead); and `facts` paged through with a page smaller than the row count (no page over the page size, together
the CSV's rows, the same rows per combination of attribute values). The model is also validated against
babbage's model schema; its errors are listed in the summary and fail the check only with `--strict-schema`:
babbage's Cube never validates, and the schema's table-name pattern refuses a name that starts with a digit, as
the `owner + md5` fact table names (the original's and ours) often do.

On success prints one line of JSON and exits 0. On a difference prints one JSON line per difference (check,
measure, attribute, value, expected, got), then a summary line with "ok": false, and exits 1. Numbers are
compared as floats with a relative tolerance of 1e-9 (of the larger of the two and of the sum of the absolute
values that went into the total, so a total that cancels to about zero compares sanely).
"""

import argparse
import collections
import csv
import datetime
import decimal
import io
import json
import os
import sys
import traceback
import unicodedata
import warnings

decimal.getcontext().prec = 80

REL_TOL = 1e-9
# babbage's Pagination caps a page at 10,000 rows (page_max).
BABBAGE_PAGE_MAX = 10000
MAX_REPORTED = 200


class Fail(Exception):
    """The check cannot go on (bad arguments, a package the loader would have refused)."""


# --- the loader's column names ----------------------------------------------------------------------------------


def ascii_fold(text):
    try:
        from text_unidecode import unidecode  # installed with normality, a dependency of babbage

        return unidecode(text)
    except ImportError:  # pragma: no cover
        return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def slug(name):
    folded = ascii_fold(name.strip()).lower()
    out = []
    for c in folded:
        if c.isascii() and c.isalnum():
            out.append(c)
        elif not out or out[-1] != "_":
            out.append("_")
    text = "".join(out).strip("_")
    return text or "column"


def column_names(names):
    taken = set()
    next_suffix = {}
    columns = []
    for name in names:
        base = slug(name)
        candidate = base
        if candidate in taken:
            suffix = next_suffix.get(base, 1)
            while True:
                candidate = "%s_%d" % (base, suffix)
                suffix += 1
                if candidate not in taken:
                    break
            next_suffix[base] = suffix
        taken.add(candidate)
        columns.append(candidate)
    return columns


# --- reading the CSV as the loader does -------------------------------------------------------------------------


def number_of(raw, field):
    text = raw.strip()
    decimal_char = field.get("decimalChar", ".")
    group_char = field.get("groupChar", ",")
    if group_char and group_char != decimal_char:
        text = text.replace(group_char, "")
    if decimal_char != ".":
        text = text.replace(decimal_char, ".")
    try:
        value = decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise Fail("%r is not a number (field %r)" % (raw, field.get("name")))
    if not value.is_finite():
        raise Fail("%r is not a number (field %r)" % (raw, field.get("name")))
    return value


# A date of format `any`, as the loader reads it (DESIGN §7): ISO first, then day before month.
ANY_DATE = ("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%Y/%m/%d", "%d-%m-%Y")


def date_of(raw, field):
    fmt = field.get("format") or "default"
    if fmt.startswith("fmt:"):
        fmt = fmt[len("fmt:"):]
    if fmt == "default":
        fmt = "%Y-%m-%d"
    if fmt == "any":
        for pattern in ANY_DATE:
            try:
                return datetime.datetime.strptime(raw.strip(), pattern).date()
            except ValueError:
                pass
        raise Fail("%r is not a date in any format the loader reads (field %r)" % (raw, field.get("name")))
    try:
        return datetime.datetime.strptime(raw.strip(), fmt).date()
    except ValueError:
        raise Fail("%r is not a date in the format %r (field %r)" % (raw, fmt, field.get("name")))


def csv_value(raw, data_type, field):
    """A CSV cell as the loader stores it, in the type the model gives the column."""
    if raw == "":
        return None
    if data_type in ("integer", "year"):
        try:
            return int(raw.strip())
        except ValueError:
            raise Fail("%r is not an integer (field %r)" % (raw, field.get("name")))
    if data_type == "number":
        return number_of(raw, field)
    if data_type == "date":
        return date_of(raw, field)
    return raw


def db_value(value, data_type):
    """A value babbage returned, in the form csv_value gives."""
    if value is None:
        return None
    if data_type in ("integer", "year"):
        return int(value)
    if data_type == "number":
        return decimal.Decimal(str(value))
    if data_type == "date":
        if isinstance(value, datetime.datetime):
            return value.date()
        if isinstance(value, datetime.date):
            return value
        return datetime.date.fromisoformat(str(value)[:10])
    return value if isinstance(value, str) else str(value)


def read_package(folder):
    path = os.path.join(folder, "datapackage.json")
    with open(path, encoding="utf-8") as fh:
        descriptor = json.load(fh)
    resources = descriptor.get("resources") or []
    chosen = None
    for resource in resources:
        fields = (resource.get("schema") or {}).get("fields") or []
        if any(isinstance(f, dict) and "columnType" in f for f in fields):
            chosen = resource
            break
    if chosen is None:
        raise Fail("%s: no resource has a field with a columnType" % path)
    all_fields = [f for f in chosen["schema"]["fields"] if isinstance(f, dict)]
    typed = [f for f in all_fields if "columnType" in f]
    columns = column_names([f.get("name", "") for f in typed])
    by_column = dict(zip(columns, typed))

    encoding = (chosen.get("encoding") or "utf-8").strip()
    label = encoding.lower().replace("_", "-")
    if label in ("utf-8", "utf8"):
        encoding = "utf-8-sig"  # the loader drops a byte order mark
    elif label in ("latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1", "ascii", "us-ascii"):
        encoding = "cp1252"  # the loader's decoder (encoding_rs) reads these labels as windows-1252, as WHATWG does
    dialect = chosen.get("dialect") or {}
    options = {
        "delimiter": dialect.get("delimiter", ","),
        "quotechar": dialect.get("quoteChar", '"'),
        "doublequote": dialect.get("doubleQuote", True),
        "escapechar": dialect.get("escapeChar"),
        "strict": False,
    }
    has_header = dialect.get("header", True)
    trim = dialect.get("skipInitialSpace", False)
    resource_path = chosen.get("path")
    if isinstance(resource_path, list):
        resource_path = resource_path[0]
    if not resource_path:
        raise Fail("%s: the resource has no path" % path)
    csv_path = os.path.join(folder, resource_path)
    with io.open(csv_path, encoding=encoding, newline="") as fh:
        reader = csv.reader(fh, **options)
        header = None
        if has_header:
            header = [h.strip() for h in next(reader)]
        else:
            header = [f.get("name", "") for f in all_fields]
        rows = []
        for record in reader:
            if len(record) == 0 or (len(record) == 1 and record[0] == ""):
                continue  # a blank line: the loader skips it, and does not count it
            if trim:
                record = [c.strip() for c in record]
            rows.append(record)
    positions = {}
    for column, field in by_column.items():
        name = field.get("name", "")
        if name not in header:
            raise Fail("%s: the CSV header has no column %r" % (csv_path, name))
        positions[column] = header.index(name)
    return {
        "descriptor": descriptor,
        "fields": by_column,
        "positions": positions,
        "rows": rows,
        "csv_path": csv_path,
    }


# --- comparing ----------------------------------------------------------------------------------------------------


def close(expected, got, scale=0.0):
    if expected is None or got is None:
        return expected is None and got is None
    e, g = float(expected), float(got)
    return abs(e - g) <= REL_TOL * max(abs(e), abs(g), float(scale))


def shown(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [shown(v) for v in value]
    if isinstance(value, dict):
        return {k: shown(v) for k, v in value.items()}
    return str(value)


class Report:
    def __init__(self):
        self.differences = 0

    ORDER = ("check", "attribute", "value", "measure", "expected", "got", "error", "at")

    def differ(self, **what):
        self.differences += 1
        if self.differences <= MAX_REPORTED:
            keys = [k for k in self.ORDER if k in what] + sorted(k for k in what if k not in self.ORDER)
            print(json.dumps(collections.OrderedDict((k, shown(what[k])) for k in keys)), flush=True)
        elif self.differences == MAX_REPORTED + 1:
            print(json.dumps({"note": "more differences follow; only the first %d are shown" % MAX_REPORTED}))

    def error(self, check, exc, **what):
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        self.differ(
            check=check,
            error="%s: %s" % (type(exc).__name__, exc),
            at="%s:%d in %s" % (os.path.basename(frame.filename), frame.lineno, frame.name),
            **what
        )


class Stats:
    __slots__ = ("count", "sums", "abs_sums")

    def __init__(self, measures):
        self.count = 0
        self.sums = {m: None for m in measures}
        self.abs_sums = {m: decimal.Decimal(0) for m in measures}

    def add(self, values):
        self.count += 1
        for measure, value in values.items():
            if value is not None:
                self.sums[measure] = value if self.sums[measure] is None else self.sums[measure] + value
                self.abs_sums[measure] += abs(value)


# --- the check ----------------------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-url", required=True, help="SQLAlchemy URL of the database the package is loaded in")
    parser.add_argument("--model", required=True, help="a JSON file holding the package's Babbage model")
    parser.add_argument("--package", required=True, help="the folder holding datapackage.json and its CSV")
    parser.add_argument("--name", default="cube", help="the cube's name (only shown)")
    parser.add_argument("--page-size", type=int, help="the facts page size (default: about a seventh of the rows)")
    parser.add_argument("--strict-schema", action="store_true", help="fail when the model does not validate")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except Fail as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return 1


def run(args):
    # The era's libraries on Python 3.8 warn of what later versions removed; SQLAlchemy warns that SQLite has no
    # decimal type (sums come back as floats, hence the tolerance). Neither is a finding.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*does \\*not\\* support Decimal objects natively.*")
    import sqlalchemy
    from babbage.cube import Cube
    from babbage.validation import load_validator

    with open(args.model, encoding="utf-8") as fh:
        model = json.load(fh)
    if isinstance(model, str):  # the registry's column, JSON text quoted once more
        model = json.loads(model)
    package = read_package(args.package)
    report = Report()

    schema_errors = [
        "%s: %s" % ("/".join(str(p) for p in e.absolute_path) or "(model)", e.message)
        for e in load_validator("model.json").iter_errors(model)
    ]
    if args.strict_schema:
        for message in schema_errors:
            report.differ(check="model-schema", error=message)

    url = args.db_url
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    engine = sqlalchemy.create_engine(url)
    cube = Cube(engine, args.name, model)

    # The model's columns, as CSV columns.
    def csv_column(column, what):
        name = column.split(".", 1)[1] if "." in column else column
        if name not in package["fields"]:
            raise Fail("the model's %s column %r is no field's column name (they are %s)"
                       % (what, column, ", ".join(sorted(package["fields"]))))
        return name

    measures = {}  # measure name -> (column, type)
    for name, spec in sorted(model.get("measures", {}).items()):
        measures[name] = (csv_column(spec["column"], "measure %r" % name), spec.get("type") or "number")
    attributes = collections.OrderedDict()  # ref -> (column, type)
    dimensions = collections.OrderedDict()  # dimension -> [refs], key attribute first
    for dim_name, dim in sorted(model.get("dimensions", {}).items()):
        refs = []
        attrs = dim.get("attributes", {})
        names = sorted(attrs, key=lambda a: (a != dim.get("key_attribute"), a))
        for attr_name in names:
            spec = attrs[attr_name]
            ref = "%s.%s" % (dim_name, attr_name)
            attributes[ref] = (csv_column(spec["column"], "attribute %r" % ref), spec.get("type") or "string")
            refs.append(ref)
        dimensions[dim_name] = refs

    # The CSV's rows, typed.
    def cell(record, column):
        position = package["positions"][column]
        return record[position] if position < len(record) else ""

    facts = []  # (attribute values by ref, measure values by measure)
    for record in package["rows"]:
        attrs = {ref: csv_value(cell(record, col), typ, package["fields"][col])
                 for ref, (col, typ) in attributes.items()}
        values = {m: csv_value(cell(record, col), "number", package["fields"][col]) for m, (col, _) in measures.items()}
        facts.append((attrs, values))
    rows = len(facts)

    def group(key_of):
        groups = collections.OrderedDict()
        for attrs, values in facts:
            key = key_of(attrs)
            if key not in groups:
                groups[key] = Stats(measures)
            groups[key].add(values)
        return groups

    def compare_stats(check, expected, got_cell, **where):
        """Compares a CSV group with a babbage cell: `_count` and every `<measure>.sum`."""
        if got_cell.get("_count") != expected.count:
            report.differ(check=check, measure="_count", expected=expected.count, got=got_cell.get("_count"), **where)
        for measure in measures:
            ref = "%s.sum" % measure
            if ref not in got_cell:
                report.differ(check=check, measure=ref, expected=expected.sums[measure], got="(no such key)", **where)
            elif not close(expected.sums[measure], got_cell[ref], expected.abs_sums[measure]):
                report.differ(check=check, measure=ref, expected=expected.sums[measure], got=got_cell[ref], **where)

    def all_cells(**query):
        cells, page, result = [], 1, None
        while True:
            result = cube.aggregate(page=page, page_size=BABBAGE_PAGE_MAX, **query)
            cells.extend(result["cells"])
            if not result["cells"] or len(cells) >= result["total_cell_count"]:
                return cells, result
            page += 1

    # 0. The model as babbage's /model/ endpoint serves it (os-api's too): babbage's own JSON encoder.
    from babbage.api import JSONEncoder

    try:
        JSONEncoder().encode(cube.model)
    except Exception as exc:
        report.error("model", exc)

    # 1. Totals: the fact count and the sum of every measure; the answer as /aggregate/ serializes it.
    total = Stats(measures)
    for _, values in facts:
        total.add(values)
    try:
        result = cube.aggregate()
        compare_stats("total", total, result["summary"] or {})
        JSONEncoder().encode(result)
    except Exception as exc:  # babbage failed: that is the finding
        report.error("total", exc)

    # 2. Drilldowns: by every attribute, and by every dimension (all its attributes).
    drilldowns = 0
    drill_refs = [(ref, [ref]) for ref in attributes] + [(dim, refs) for dim, refs in dimensions.items()]
    for drilldown, refs in drill_refs:
        drilldowns += 1
        key_of = lambda attrs, refs=refs: tuple(attrs[r] for r in refs)
        expected = group(key_of)
        try:
            cells, result = all_cells(drilldowns=drilldown)
        except Exception as exc:
            report.error("drilldown", exc, attribute=drilldown)
            continue
        if result["total_cell_count"] != len(expected):
            report.differ(check="drilldown", attribute=drilldown, measure="total_cell_count",
                          expected=len(expected), got=result["total_cell_count"])
        got = {}
        for c in cells:
            key = tuple(db_value(c.get(r), attributes[r][1]) for r in refs)
            if key in got:
                report.differ(check="drilldown", attribute=drilldown, value=key, expected="one cell",
                              got="two cells")
            got[key] = c
        for key, stats in expected.items():
            value = key[0] if len(key) == 1 else key
            if key not in got:
                report.differ(check="drilldown", attribute=drilldown, value=value, measure="_count",
                              expected=stats.count, got="(no cell)")
            else:
                compare_stats("drilldown", stats, got[key], attribute=drilldown, value=value)
        for key in got:
            if key not in expected:
                report.differ(check="drilldown", attribute=drilldown, value=key[0] if len(key) == 1 else key,
                              measure="_count", expected="(no such value in the CSV)", got=got[key].get("_count"))

    # 3. Members of every dimension: as many as the CSV's distinct key values, and the same ones.
    members_checked = 0
    for dim, refs in dimensions.items():
        members_checked += 1
        key_ref = refs[0]
        key_type = attributes[key_ref][1]
        expected = collections.OrderedDict()  # key value -> {other attribute: the values seen with that key}
        for attrs, _ in facts:
            seen = expected.setdefault(attrs[key_ref], {ref: set() for ref in refs[1:]})
            for ref in refs[1:]:
                seen[ref].add(attrs[ref])
        try:
            data, page = [], 1
            while True:
                result = cube.members(dim, page=page, page_size=BABBAGE_PAGE_MAX)
                data.extend(result["data"])
                if not result["data"] or len(data) >= result["total_member_count"]:
                    break
                page += 1
        except Exception as exc:
            report.error("members", exc, attribute=dim)
            continue
        if result["total_member_count"] != len(expected):
            report.differ(check="members", attribute=dim, measure="total_member_count",
                          expected=len(expected), got=result["total_member_count"])
        got_keys = collections.Counter(db_value(m.get(key_ref), key_type) for m in data)
        for key in expected:
            if got_keys.get(key, 0) != 1:
                report.differ(check="members", attribute=key_ref, value=key, expected=1, got=got_keys.get(key, 0))
        for key in got_keys:
            if key not in expected:
                report.differ(check="members", attribute=key_ref, value=key, expected=0, got=got_keys[key])
        # Each member's other attributes are values the CSV has with that key.
        for m in data:
            key = db_value(m.get(key_ref), key_type)
            for ref in refs[1:]:
                value = db_value(m.get(ref), attributes[ref][1])
                seen = expected.get(key, {}).get(ref, set())
                if seen and value not in seen:
                    report.differ(check="members", attribute=ref, value=key, expected=sorted(map(str, seen)),
                                  got=value)

    # 4. A cut: the most frequent value of the first string attribute with two values or more (else an integer
    # one, else a date one), in os-api's syntax; the cut's count and totals equal the CSV's filtered ones.
    # babbage 0.4.0 refuses every cut on a date attribute (its parser reads `2015-07-14` as a datetime.date, and
    # its type check wants a datetime.datetime): a package whose only attributes are dates cannot be cut through
    # os-api at all, with Conductor's tables or the original's. That refusal is recorded in the summary, not
    # counted as a difference.
    cut_info = None
    candidates = [r for r in attributes if attributes[r][1] == "string"] + \
                 [r for r in attributes if attributes[r][1] in ("integer", "year")] + \
                 [r for r in attributes if attributes[r][1] == "date"]
    # An attribute with two values or more cuts a strict subset; a package whose every attribute has one value
    # (a one-row package) is cut on its first attribute, which must then select every row.
    distinct = {r: len({a[r] for a, _ in facts if a[r] is not None}) for r in candidates}
    candidates = [r for r in candidates if distinct[r] >= 2] or [r for r in candidates if distinct[r] == 1][:1]
    for ref in candidates:
        counts = collections.Counter(a[ref] for a, _ in facts if a[ref] is not None)
        value = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[0][0]
        literal = json.dumps(value) if isinstance(value, str) else value.isoformat() \
            if isinstance(value, datetime.date) else str(value)
        cut = "%s:%s" % (ref, literal)
        expected = Stats(measures)
        for attrs, values in facts:
            if attrs[ref] == value:
                expected.add(values)
        cut_info = {"cut": cut, "rows": expected.count}
        try:
            result = cube.aggregate(cuts=cut)
            compare_stats("cut", expected, result["summary"] or {}, attribute=ref, value=value)
            cells, _ = all_cells(cuts=cut, drilldowns=ref)
            got_values = [db_value(c.get(ref), attributes[ref][1]) for c in cells]
            if got_values != [value]:
                report.differ(check="cut", attribute=ref, value=value, measure="drilldown values",
                              expected=[value], got=got_values)
        except Exception as exc:
            from babbage.exc import QueryException

            if attributes[ref][1] == "date" and isinstance(exc, QueryException) and "parsed as type" in str(exc):
                cut_info["refused_by_babbage"] = "%s: %s" % (type(exc).__name__, exc)
            else:
                report.error("cut", exc, attribute=ref, value=value)
        break
    if cut_info is None:
        report.differ(check="cut", error="no attribute has a value to cut on")

    # 5. Facts, paged: every page at most the page size, together the CSV's rows, the same rows per attribute
    # combination (count and measure sums).
    page_size = args.page_size or max(1, min(BABBAGE_PAGE_MAX, (rows + 6) // 7))
    if rows > 1 and page_size >= rows:
        page_size = rows - 1
    pages, fetched = 0, []
    try:
        page = 1
        while True:
            result = cube.facts(page=page, page_size=page_size)
            if result["total_fact_count"] != rows:
                report.differ(check="facts", measure="total_fact_count", expected=rows,
                              got=result["total_fact_count"])
                break
            data = result["data"]
            if len(data) > page_size:
                report.differ(check="facts", measure="page length", value=page, expected=page_size, got=len(data))
            if not data:
                break
            pages += 1
            fetched.extend(data)
            if len(fetched) >= rows or pages > rows:
                break
            page += 1
    except Exception as exc:
        report.error("facts", exc, value=page)
    else:
        if len(fetched) != rows:
            report.differ(check="facts", measure="rows over all pages", expected=rows, got=len(fetched))
        refs = list(attributes)
        expected = group(lambda attrs: tuple(attrs[r] for r in refs))
        got = collections.OrderedDict()
        for fact in fetched:
            key = tuple(db_value(fact.get(r), attributes[r][1]) for r in refs)
            values = {m: (None if fact.get(m) is None else decimal.Decimal(str(fact.get(m)))) for m in measures}
            got.setdefault(key, Stats(measures)).add(values)
        for key, stats in expected.items():
            g = got.get(key)
            if g is None:
                report.differ(check="facts", value=dict(zip(refs, key)), measure="rows", expected=stats.count, got=0)
                continue
            if g.count != stats.count:
                report.differ(check="facts", value=dict(zip(refs, key)), measure="rows", expected=stats.count,
                              got=g.count)
            for m in measures:
                if not close(stats.sums[m], g.sums[m], stats.abs_sums[m]):
                    report.differ(check="facts", value=dict(zip(refs, key)), measure=m,
                                  expected=stats.sums[m], got=g.sums[m])
        for key in got:
            if key not in expected:
                report.differ(check="facts", value=dict(zip(refs, key)), measure="rows", expected=0,
                              got=got[key].count)
        if rows > 1 and pages < 2:
            report.differ(check="facts", measure="pages", expected="at least 2", got=pages)

    summary = collections.OrderedDict([
        ("ok", report.differences == 0),
        ("cube", args.name),
        ("backend", engine.dialect.name),
        ("fact_table", model.get("fact_table")),
        ("rows", rows),
        ("measures_checked", list(measures)),
        ("drilldowns_checked", drilldowns),
        ("members_checked", members_checked),
        ("cut", cut_info),
        ("facts_pages", pages),
        ("facts_page_size", page_size),
        ("model_schema_errors", schema_errors),
    ])
    if report.differences:
        summary["differences"] = report.differences
    print(json.dumps(summary, default=str))
    return 0 if report.differences == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
