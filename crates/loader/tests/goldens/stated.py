#!/usr/bin/env python3
"""Writes <case>.model.json: the model a load of an older package uses, restated from the package's own `model`
(or `mapping`), independently of the Rust code, for `../goldens.rs` to compare the loader's with.

The rules, from the loader's design (crates/loader/src/stated.rs): the package's dimension and measure names,
`labelfor`, `parent`, `primaryKey` (a single name becomes a list), `dimensionType` (`other` when unstated) and
`classificationType` are kept; every attribute is keyed by its column (the loader's column name of its source
field: ASCII-folded, lower case, other runs `_`, clashes `_1`, `_2`; tests/interop/babbage_check.py has the same
rule), with `source` that column and `title` the attribute's, else the field's, else the field's name; a measure
is what os-types gives for its field (title and options, taken from <case>-translated.os-types.json, the real
os-types' output), under the package's measure name.

Run from this folder: ./stated.py (reads ../fixtures/<case>.datapackage.json).
"""
import json
import re
import unicodedata

CASES = ["boost-moldova", "ukgov-finances-cra", "fdp-labels-and-hierarchies"]


def slug(name):
    folded = unicodedata.normalize("NFKD", name.strip()).encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "_", folded).strip("_") or "column"


def column_names(names):
    taken, columns = set(), []
    for name in names:
        base = candidate = slug(name)
        suffix = 1
        while candidate in taken:
            candidate = "%s_%d" % (base, suffix)
            suffix += 1
        taken.add(candidate)
        columns.append(candidate)
    return columns


def restate(case):
    package = json.load(open("../fixtures/%s.datapackage.json" % case))
    stated = package.get("model") or package["mapping"]
    os_types = json.load(open("%s-translated.os-types.json" % case))
    # The loaded fields are those the model names, in the resource's order.
    resource_fields = [f for f in package["resources"][0]["schema"]["fields"] if f["name"] in stated_sources(stated)]
    columns = dict(zip([f["name"] for f in resource_fields], column_names([f["name"] for f in resource_fields])))
    titles = {f["name"]: (f.get("title") or f["name"]) for f in resource_fields}
    dimensions = {}
    for name, dimension in stated["dimensions"].items():
        attributes = dimension["attributes"]
        key = {a: columns[attributes[a]["source"]] for a in attributes}
        out_attributes = {}
        for a, attribute in attributes.items():
            out = {"source": key[a], "title": attribute.get("title") or titles[attribute["source"]]}
            for link in ("labelfor", "parent"):
                if link in attribute:
                    out[link] = key[attribute[link]]
            out_attributes[key[a]] = out
        primary_key = dimension.get("primaryKey") or list(attributes)
        if isinstance(primary_key, str):
            primary_key = [primary_key]
        out = {
            "dimensionType": dimension.get("dimensionType", "other"),
            "primaryKey": [key[a] for a in primary_key],
            "attributes": out_attributes,
        }
        if "classificationType" in dimension:
            out["classificationType"] = dimension["classificationType"]
        dimensions[name] = out
    measures = {}
    for name, measure in stated["measures"].items():
        column = columns[measure["source"]]
        measures[name] = next(m for m in os_types["model"]["measures"].values() if m["source"] == column)
    return {"dimensions": dimensions, "measures": measures}


def stated_sources(stated):
    sources = {m["source"] for m in stated["measures"].values()}
    for dimension in stated["dimensions"].values():
        sources |= {a["source"] for a in dimension["attributes"].values()}
    return sources


if __name__ == "__main__":
    for case in CASES:
        with open("%s.model.json" % case, "w") as out:
            json.dump(restate(case), out, indent=2, ensure_ascii=False)
            out.write("\n")
        print("wrote %s.model.json" % case)
