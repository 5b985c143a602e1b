"""The model card (the Hub repo's README.md) generated from a model folder and its evidence.

A card is written from facts, never by hand: the folder's config.json (architecture, input,
classes, dtype, sha256), the evaluation metrics JSON that `vidmatte-eval` writes, and the
list of training data with each source's licence. The weights inherit the most restrictive
data licence, so when any source is research-only / non-commercial the card says so at the
top and the front matter licence is `other`, not the one asked for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidmatte.models.errors import UsageError

#: words in a licence string that make the weights non-commercial
RESTRICTIVE = ("non-commercial", "noncommercial", "research", "nc-", "-nc", "cc-by-nc", "academic")


@dataclass
class DataSource:
    """One training data source: what, under which licence, from where, used how."""

    name: str
    licence: str
    url: str = ""
    notes: str = ""

    @property
    def restrictive(self) -> bool:
        low = self.licence.lower()
        return any(w in low for w in RESTRICTIVE)


def load_data_sources(path: str | Path) -> list[DataSource]:
    """Read a JSON list of {"name", "licence", "url"?, "notes"?} objects."""
    items = _read_json(path)
    if not isinstance(items, list):
        raise UsageError(f"{path}: expected a JSON list of data sources")
    out = []
    for i, it in enumerate(items):
        if not isinstance(it, dict) or not it.get("name") or not it.get("licence"):
            raise UsageError(f"{path}: entry {i} needs 'name' and 'licence'")
        out.append(DataSource(str(it["name"]), str(it["licence"]), str(it.get("url", "")),
                              str(it.get("notes", ""))))  # fmt: skip
    return out


def load_metrics(path: str | Path) -> dict[str, Any]:
    """Read metrics JSON: {"metric": value} or {"benchmark": {"metric": value}}."""
    m = _read_json(path)
    if not isinstance(m, dict):
        raise UsageError(f"{path}: expected a JSON object of metrics")
    return m


def _read_json(path: str | Path) -> Any:
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise UsageError(f"{p} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"{p} is not valid JSON ({e})") from None


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _metrics_table(metrics: Mapping[str, Any]) -> list[str]:
    groups: dict[str, dict[str, Any]] = {}
    for k, v in metrics.items():
        if isinstance(v, Mapping):
            groups[str(k)] = dict(v)
        else:
            groups.setdefault("", {})[str(k)] = v
    lines = ["| benchmark | metric | value |", "|---|---|---:|"]
    for g, items in groups.items():
        for k, v in items.items():
            lines.append(f"| {g or '-'} | {k} | {_fmt(v)} |")
    return lines


def build_model_card(
    config: Mapping[str, Any],
    *,
    repo_id: str,
    metrics: Mapping[str, Any] | None = None,
    data: Sequence[DataSource] = (),
    licence: str = "apache-2.0",
    code_url: str = "https://github.com/vidmatte/vidmatte",
) -> str:
    """Return the card's markdown (YAML front matter + sections)."""
    arch = config.get("architecture", "?")
    restrictive = [d for d in data if d.restrictive]
    hub_licence = "other" if restrictive else licence
    tags = ["vidmatte", "video-matting", "image-segmentation", "safetensors", arch]
    fm = ["---", f"license: {hub_licence}", "library_name: vidmatte", "tags:"]
    fm += [f"- {t}" for t in tags]
    fm += ["---", ""]

    body = [f"# {repo_id.split('/')[-1]}", ""]
    if restrictive:
        names = ", ".join(f"{d.name} ({d.licence})" for d in restrictive)
        body += [
            f"> **Licence note:** trained with data under restrictive terms: {names}. "
            "These weights are for research / non-commercial use only unless those terms "
            "allow otherwise.",
            "",
        ]
    body += [
        f"`{arch}` weights for [vidmatte]({code_url}): per-person video matting with "
        "per-frame inference (a SOLOv2-style trimap network per person, IndexNet matting).",
        "",
        "## Use",
        "",
        "```bash",
        "vidmatte-cli weights download      # fetches this pinned revision into the HF cache",
        "vidmatte-cli weights verify",
        "```",
        "",
        "## Model",
        "",
        "| field | value |",
        "|---|---|",
        f"| architecture | `{arch}` |",
        f"| format version | {config.get('format_version', '?')} |",
        f"| dtype | {config.get('dtype', '?')} |",
        f"| vidmatte version | {config.get('version', '?')} |",
        f"| sha256 (model.safetensors) | `{config.get('sha256', '?')}` |",
    ]
    for key in ("classes", "input", "arch"):
        if key in config:
            body.append(f"| {key} | `{json.dumps(config[key], sort_keys=True)}` |")
    training = config.get("training") or {}
    if training.get("step") is not None:
        body.append(f"| training steps | {training['step']} |")
    body += ["", "## Evaluation", ""]
    body += _metrics_table(metrics) if metrics else ["No evaluation metrics were supplied."]
    body += ["", "## Training data", ""]
    if data:
        body += ["| source | licence | link | notes |", "|---|---|---|---|"]
        body += [f"| {d.name} | {d.licence} | {d.url} | {d.notes} |" for d in data]
    else:
        body.append("Not recorded.")
    body += [
        "",
        "## Licence",
        "",
        f"Weights: `{hub_licence}`"
        + (" (see the note above)." if restrictive else ".")
        + " The vidmatte code is Apache-2.0.",
        "",
        "## Safety",
        "",
        "Only `config.json` and `model.safetensors` are loaded; vidmatte checks the format "
        "version and the sha256 above before reading any tensor and never unpickles files.",
        "",
    ]
    return "\n".join(fm + body)
