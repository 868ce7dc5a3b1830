"""The real ``terraform`` binary for tests: init with the local provider, plan, apply.

The machines carry terraform and the ``hashicorp/aws`` provider in a local
plugin directory (``/opt/tf-plugins`` here; ``ECSGRPC_TF_PLUGIN_DIR`` names
another). :class:`Workspace` copies ``infra/terraform`` into a temporary
directory (so no ``.terraform`` or state lands in the repository) and runs
the commands there, pointed at a moto server through ``AWS_ENDPOINT_URL``.

moto (5.2) lacks Application Auto Scaling's tag actions, which the provider
calls for every scalable target; :func:`add_autoscaling_tag_actions` adds
them to the in-process moto server (the tags are stored and returned, nothing
else changes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "Workspace",
    "add_autoscaling_tag_actions",
    "plugin_dir",
    "skip_reason",
    "terraform_binary",
]

ROOT = Path(__file__).resolve().parents[2]
_PLUGIN_CANDIDATES = ("/opt/tf-plugins", "~/.terraform.d/plugins")
_AWS_PROVIDER = Path("registry.terraform.io/hashicorp/aws")


def terraform_binary() -> str | None:
    return shutil.which("terraform")


def plugin_dir() -> Path | None:
    """The local plugin directory holding hashicorp/aws, or None."""
    given = os.environ.get("ECSGRPC_TF_PLUGIN_DIR")
    for candidate in [given] if given else _PLUGIN_CANDIDATES:
        path = Path(candidate).expanduser()
        if (path / _AWS_PROVIDER).is_dir():
            return path
    return None


def skip_reason() -> str | None:
    """Why terraform tests cannot run here (one line), or None when they can."""
    if terraform_binary() is None:
        return "no terraform binary on PATH"
    if plugin_dir() is None:
        return "no local hashicorp/aws provider (set ECSGRPC_TF_PLUGIN_DIR)"
    return None


class Workspace:
    """A copy of infra/terraform; commands run in one of its directories."""

    def __init__(self, tmp: Path, env: Mapping[str, str]) -> None:
        self.root = tmp / "terraform"
        shutil.copytree(
            ROOT / "infra" / "terraform",
            self.root,
            ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"),
        )
        cli_config = tmp / "terraformrc"
        cli_config.write_text("")  # the developer's CLI config never applies
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))},
            "TF_CLI_CONFIG_FILE": str(cli_config),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
            "AWS_CONFIG_FILE": "/nonexistent/ecsgrpc-tests/config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/ecsgrpc-tests/credentials",
            "AWS_EC2_METADATA_DISABLED": "true",
            **env,
        }

    def run(
        self, where: str, *args: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        binary = terraform_binary()
        assert binary is not None
        result = subprocess.run(
            [binary, *args, "-no-color"] if args[0] != "fmt" else [binary, *args],
            cwd=self.root / where,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"terraform {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def init(self, where: str) -> None:
        self.run(where, "init", "-input=false", f"-plugin-dir={plugin_dir()}", timeout=180)

    def write_vars(self, where: str, name: str, values: Mapping[str, Any]) -> str:
        path = self.root / where / f"{name}.tfvars.json"
        path.write_text(json.dumps(values))
        return str(path)

    def plan(self, where: str, var_file: str, out: str, *extra: str) -> dict[str, Any]:
        """Plan into ``out`` and return ``terraform show -json`` of it."""
        self.run(where, "plan", "-input=false", f"-var-file={var_file}", f"-out={out}", *extra)
        shown = self.run(where, "show", "-json", out)
        data: dict[str, Any] = json.loads(shown.stdout)
        return data


def planned_resources(plan: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """address -> planned values of every resource in a ``show -json`` plan."""
    found: dict[str, dict[str, Any]] = {}

    def walk(module: Mapping[str, Any]) -> None:
        for resource in module.get("resources", []):
            found[resource["address"]] = resource.get("values", {})
        for child in module.get("child_modules", []):
            walk(child)

    walk(plan["planned_values"]["root_module"])
    return found


def add_autoscaling_tag_actions() -> None:
    """TagResource, UntagResource and ListTagsForResource for moto's Application
    Auto Scaling (absent in moto 5.2), keyed by resource ARN. Idempotent."""
    from moto.applicationautoscaling.responses import ApplicationAutoScalingResponse

    if getattr(ApplicationAutoScalingResponse, "_ecsgrpc_tags", None) is not None:
        return
    store: dict[str, dict[str, str]] = {}

    def tag_resource(self: Any) -> str:
        arn = self._get_param("ResourceARN")
        store.setdefault(arn, {}).update(self._get_param("Tags") or {})
        return "{}"

    def untag_resource(self: Any) -> str:
        arn = self._get_param("ResourceARN")
        for key in self._get_param("TagKeys") or []:
            store.get(arn, {}).pop(key, None)
        return "{}"

    original_register = ApplicationAutoScalingResponse.register_scalable_target

    def register_scalable_target(self: Any) -> str:
        answer: str = original_register(self)
        tags = self._get_param("Tags")
        if tags:
            store.setdefault(json.loads(answer)["ScalableTargetARN"], {}).update(tags)
        return answer

    def list_tags_for_resource(self: Any) -> str:
        return json.dumps({"Tags": store.get(self._get_param("ResourceARN"), {})})

    ApplicationAutoScalingResponse.register_scalable_target = register_scalable_target  # type: ignore[method-assign]
    ApplicationAutoScalingResponse.tag_resource = tag_resource  # type: ignore[attr-defined]
    ApplicationAutoScalingResponse.untag_resource = untag_resource  # type: ignore[attr-defined]
    ApplicationAutoScalingResponse.list_tags_for_resource = list_tags_for_resource  # type: ignore[attr-defined]
    ApplicationAutoScalingResponse._ecsgrpc_tags = store  # type: ignore[attr-defined]
