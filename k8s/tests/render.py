#!/usr/bin/env python3
"""Renders a kustomization directory to a list of manifests.

Uses real kustomize when one of v4 or later is on the machine (`kustomize build`, or
`kubectl kustomize`, which embeds it). No package registry this project can use ships one
(Debian's kubernetes-client is kubectl 1.20 with kustomize v2.0.3, too old for these
files), so otherwise a small built-in renderer takes over. It covers exactly the subset of
kustomize that k8s/ uses, and refuses anything else:

  resources (files and directories), namespace, images (name/newName/newTag),
  configMapGenerator (literals; behavior create or merge; a content-hash name suffix with
  references in pod specs rewritten), patches (strategic merge, by the patch's own
  kind/name or by a target of kind, name and labelSelector with = and !=).

Its strategic merge: maps merge key by key (null deletes), lists whose items all have a
`name` merge item by item on it (containers, env, volumes...), other lists are replaced.
Its hash suffix is not kustomize's own; compare outputs with normalize_generated_names().
test_manifests.py checks that both renderers agree whenever real kustomize is present.

Usage: render.py DIR [--builtin]   (YAML on stdout; which renderer on stderr)
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

GENERATED = "__warden_render_generated__"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "namespace", "images", "configMapGenerator", "patches"}


class Unsupported(Exception):
    """The kustomization uses something the built-in renderer does not implement."""


# --- real kustomize ------------------------------------------------------------------------


def _major(version_text: str) -> int | None:
    m = re.search(r"v(\d+)\.\d+\.\d+", version_text)
    return int(m.group(1)) if m else None


def find_kustomize() -> list[str] | None:
    """The command that runs kustomize v4+, or None."""
    candidates = []
    if shutil.which("kustomize"):
        candidates.append((["kustomize", "version"], ["kustomize", "build"]))
    if shutil.which("kubectl"):
        candidates.append((["kubectl", "version", "--client"], ["kubectl", "kustomize"]))
    for version_cmd, build_cmd in candidates:
        try:
            out = subprocess.run(version_cmd, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        # kubectl prints "Kustomize Version: v5.5.0"; kustomize prints "v5.5.0".
        line = next((l for l in out.splitlines() if "ustomize" in l), out) if build_cmd[0] == "kubectl" else out
        major = _major(line)
        if major is not None and major >= 4:
            return build_cmd
    return None


def render_with_kustomize(build_cmd: list[str], directory: Path) -> list[dict]:
    out = subprocess.run([*build_cmd, str(directory)], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(build_cmd)} {directory} failed:\n{out.stderr}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


# --- built-in renderer ---------------------------------------------------------------------


def strategic_merge(base, patch):
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    named = lambda items: all(isinstance(i, dict) and "name" in i for i in items)  # noqa: E731
    if isinstance(base, list) and isinstance(patch, list) and named(base) and named(patch):
        merged = list(base)
        index = {item["name"]: i for i, item in enumerate(merged)}
        for item in patch:
            if item["name"] in index:
                merged[index[item["name"]]] = strategic_merge(merged[index[item["name"]]], item)
            else:
                merged.append(copy.deepcopy(item))
        return merged
    return copy.deepcopy(patch)


def _labels_match(labels: dict, selector: str) -> bool:
    for requirement in filter(None, (r.strip() for r in selector.split(","))):
        if "!=" in requirement:
            key, value = (s.strip() for s in requirement.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in requirement:
            key, value = (s.strip() for s in requirement.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        else:
            raise Unsupported(f"labelSelector requirement {requirement!r}")
    return True


def _matches(resource: dict, target: dict) -> bool:
    unknown = set(target) - {"kind", "name", "labelSelector"}
    if unknown:
        raise Unsupported(f"patch target fields {sorted(unknown)}")
    meta = resource.get("metadata", {})
    if "kind" in target and resource.get("kind") != target["kind"]:
        return False
    if "name" in target and not re.fullmatch(target["name"], meta.get("name", "")):
        return False
    if "labelSelector" in target and not _labels_match(meta.get("labels") or {}, target["labelSelector"]):
        return False
    return True


def _pod_specs(resource: dict):
    spec = resource.get("spec", {})
    if resource.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    pod = spec.get("template", {}).get("spec")
    if pod is not None:
        yield pod


def _containers(pod: dict):
    yield from pod.get("initContainers") or []
    yield from pod.get("containers") or []


def _split_image(image: str) -> tuple[str, str]:
    """('repo/name', ':tag' or '@digest' or '')."""
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, "@" + digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, ""


def _apply_images(resources: list[dict], images: list[dict]) -> None:
    for rule in images:
        unknown = set(rule) - {"name", "newName", "newTag"}
        if unknown:
            raise Unsupported(f"images fields {sorted(unknown)}")
        for resource in resources:
            for pod in _pod_specs(resource):
                for container in _containers(pod):
                    name, suffix = _split_image(container.get("image", ""))
                    if name != rule["name"]:
                        continue
                    new_name = rule.get("newName", name)
                    new_suffix = ":" + str(rule["newTag"]) if "newTag" in rule else suffix
                    container["image"] = new_name + new_suffix


def _generate(resources: list[dict], generators: list[dict]) -> None:
    for gen in generators:
        unknown = set(gen) - {"name", "literals", "behavior"}
        if unknown:
            raise Unsupported(f"configMapGenerator fields {sorted(unknown)}")
        data = {}
        for literal in gen.get("literals", []):
            key, _, value = literal.partition("=")
            data[key] = value
        behavior = gen.get("behavior", "create")
        existing = [r for r in resources if r.get(GENERATED) and r["metadata"]["name"] == gen["name"]]
        if behavior == "create":
            if existing:
                raise Unsupported(f"configMapGenerator {gen['name']} created twice")
            resources.append(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data, GENERATED: True}
            )
        elif behavior == "merge":
            if len(existing) != 1:
                raise Unsupported(f"configMapGenerator {gen['name']}: nothing to merge into")
            existing[0].setdefault("data", {}).update(data)
        else:
            raise Unsupported(f"configMapGenerator behavior {behavior}")


def _load(path: Path) -> list[dict]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d]


def build(directory: Path) -> list[dict]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KUSTOMIZATION_KEYS
    if unknown:
        raise Unsupported(f"{directory}/kustomization.yaml: fields {sorted(unknown)}")
    resources: list[dict] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        resources.extend(build(path) if path.is_dir() else _load(path))
    _generate(resources, kustomization.get("configMapGenerator", []))
    for patch in kustomization.get("patches", []):
        if set(patch) - {"path", "target"}:
            raise Unsupported(f"patch fields {sorted(set(patch) - {'path', 'target'})}")
        body = yaml.safe_load((directory / patch["path"]).read_text())
        target = patch.get("target") or {"kind": body["kind"], "name": re.escape(body["metadata"]["name"])}
        body = {k: v for k, v in body.items() if k not in ("apiVersion", "kind")}
        body["metadata"] = {k: v for k, v in body.get("metadata", {}).items() if k != "name"}
        if not body["metadata"]:
            del body["metadata"]
        hits = 0
        for i, resource in enumerate(resources):
            if _matches(resource, target):
                resources[i] = strategic_merge(resource, body)
                hits += 1
        if hits == 0:
            raise Unsupported(f"patch {patch['path']} matches no resource")
    if "namespace" in kustomization:
        for resource in resources:
            if resource.get("kind") not in CLUSTER_SCOPED:
                resource.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    _apply_images(resources, kustomization.get("images", []))
    return resources


def _suffix(configmap: dict) -> str:
    encoded = json.dumps(
        {"kind": "ConfigMap", "name": configmap["metadata"]["name"], "data": configmap.get("data", {})},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(encoded.encode()).hexdigest()[:10]


def render_builtin(directory: Path) -> list[dict]:
    resources = build(Path(directory))
    renamed = {}
    for resource in resources:
        if resource.pop(GENERATED, False):
            old = resource["metadata"]["name"]
            renamed[old] = f"{old}-{_suffix(resource)}"
            resource["metadata"]["name"] = renamed[old]
    for resource in resources:
        for pod in _pod_specs(resource):
            for volume in pod.get("volumes") or []:
                if "configMap" in volume and volume["configMap"].get("name") in renamed:
                    volume["configMap"]["name"] = renamed[volume["configMap"]["name"]]
            for container in _containers(pod):
                for source in container.get("envFrom") or []:
                    ref = source.get("configMapRef")
                    if ref and ref.get("name") in renamed:
                        ref["name"] = renamed[ref["name"]]
                for env in container.get("env") or []:
                    ref = (env.get("valueFrom") or {}).get("configMapKeyRef")
                    if ref and ref.get("name") in renamed:
                        ref["name"] = renamed[ref["name"]]
    return resources


# --- entry points --------------------------------------------------------------------------


def render(directory: Path, builtin: bool = False) -> tuple[list[dict], str]:
    """The manifests, and which renderer made them."""
    build_cmd = None if builtin else find_kustomize()
    if build_cmd:
        return render_with_kustomize(build_cmd, Path(directory)), " ".join(build_cmd)
    return render_builtin(Path(directory)), "built-in renderer (k8s/tests/render.py)"


def normalize_generated_names(docs: list[dict]) -> list[dict]:
    """Replaces generated ConfigMap name suffixes with a placeholder, everywhere."""
    names = {
        d["metadata"]["name"]
        for d in docs
        if d.get("kind") == "ConfigMap" and re.search(r"-[a-z0-9]{10}$", d["metadata"]["name"])
    }
    text = json.dumps(docs)
    for name in names:
        text = text.replace(f'"{name}"', f'"{name[:-11]}-HASH"')
    return json.loads(text)


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    docs, renderer = render(Path(argv[0]), builtin="--builtin" in argv[1:])
    print(f"rendered {argv[0]} with {renderer}", file=sys.stderr)
    yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
