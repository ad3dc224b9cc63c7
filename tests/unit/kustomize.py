"""A small kustomize renderer for the features deploy/k8s uses, so CI needs no binary.

Supported kustomization fields: `resources` (files and directories), `namespace`,
`labels` (metadata labels only), `images`, `replicas`, and `patches` (strategic merge, from
`path` or inline `patch` with a `target` of kind and optional name). Anything else is
refused, so the renderer cannot silently drift from kustomize; where `kubectl` is installed,
test_manifests.py also compares this output with `kubectl kustomize`.

Strategic merge as kustomize does it for what we patch: maps merge, `null` deletes a key,
lists of built-in kinds merge by their patch key (containers, env, volumes by name;
volumeMounts by mountPath; new items first), every other list is replaced.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]
SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "replicas"}
SUPPORTED |= {"patches"}
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet"}


class Unsupported(ValueError):
    """The kustomization uses something this renderer does not implement."""


def load_documents(path: Path) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization(directory: Path) -> dict[str, Any]:
    document = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(document) - SUPPORTED
    if unknown:
        raise Unsupported(f"{directory}: unsupported kustomization fields {sorted(unknown)}")
    return dict(document)


def render(directory: Path) -> list[Resource]:
    """The resources `kubectl kustomize directory` would print (in file order)."""
    spec = kustomization(directory)
    resources: list[Resource] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        resources += render(path) if path.is_dir() else load_documents(path)
    for patch in spec.get("patches", []):
        apply_patch(resources, directory, patch)
    for block in spec.get("labels", []):
        if block.get("includeSelectors") or block.get("includeTemplates"):
            raise Unsupported("labels: only metadata labels are supported")
        for resource in resources:
            resource["metadata"].setdefault("labels", {}).update(block["pairs"])
    for image in spec.get("images", []):
        set_image(resources, image)
    for replicas in spec.get("replicas", []):
        for resource in named(resources, WORKLOADS, replicas["name"]):
            resource["spec"]["replicas"] = replicas["count"]
    if "namespace" in spec:
        for resource in resources:
            resource["metadata"]["namespace"] = spec["namespace"]
    return resources


def named(resources: list[Resource], kinds: set[str], name: str | None) -> list[Resource]:
    return [
        r
        for r in resources
        if r["kind"] in kinds and (name is None or r["metadata"]["name"] == name)
    ]


def apply_patch(resources: list[Resource], directory: Path, entry: dict[str, Any]) -> None:
    if set(entry) - {"path", "patch", "target"}:
        raise Unsupported(f"patch fields {sorted(entry)}")
    patches = (
        load_documents(directory / entry["path"])
        if "path" in entry
        else [yaml.safe_load(entry["patch"])]
    )
    target = entry.get("target")
    if target is not None and set(target) - {"kind", "name"}:
        raise Unsupported(f"patch target {target}")
    for patch in patches:
        kind = target["kind"] if target else patch["kind"]
        name = target.get("name") if target else patch["metadata"]["name"]
        matches = named(resources, {kind}, name)
        if not matches:
            raise Unsupported(f"patch matches nothing: {kind}/{name}")
        body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind", "metadata")}
        for resource in matches:
            merge(resource, body, builtin="." not in resource["apiVersion"].split("/")[0])


def merge(base: dict[str, Any], patch: dict[str, Any], builtin: bool) -> None:
    """Strategic-merge `patch` into `base` in place."""
    for key, value in patch.items():
        current = base.get(key)
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(current, dict):
            merge(current, value, builtin)
        elif builtin and key in MERGE_KEYS and isinstance(value, list) and current is not None:
            merge_list(current, value, MERGE_KEYS[key], builtin)
        else:
            base[key] = copy.deepcopy(value)


def merge_list(base: list[Any], patch: list[Any], key: str, builtin: bool) -> None:
    """Merge items with the same key; new items go first, as kustomize puts them."""
    new = []
    for item in patch:
        same = next((b for b in base if b.get(key) == item.get(key)), None)
        if same is None:
            new.append(copy.deepcopy(item))
        else:
            merge(same, item, builtin)
    base[:0] = new


def set_image(resources: list[Resource], image: dict[str, Any]) -> None:
    if set(image) - {"name", "newName", "newTag"}:
        raise Unsupported(f"image fields {sorted(image)}")
    for resource in resources:
        if resource["kind"] not in WORKLOADS:
            continue
        pod = resource["spec"]["template"]["spec"]
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            name, _, tag = container["image"].partition(":")
            if name == image["name"]:
                new_tag = image.get("newTag", tag)
                new_name = image.get("newName", name)
                container["image"] = f"{new_name}:{new_tag}" if new_tag else new_name


def kustomization_dirs(root: Path) -> list[Path]:
    """Every directory under `root` that holds a kustomization.yaml."""
    return sorted(p.parent for p in root.rglob("kustomization.yaml"))
