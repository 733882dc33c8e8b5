"""The image's Dockerfile as text: the layer order that keeps a new version's rebuild to
its last small layer, and nothing that resolves or downloads inside the build."""

from __future__ import annotations

from ci_kit.image import context as dockerfile

BASE = "python@sha256:" + "e" * 64


def _render(version: str = "1.0", has_deps: bool = True, **labels: str) -> str:
    return dockerfile.render(base=BASE, requirement=f"churn-model=={version}", has_deps=has_deps,
                             entrypoint=["/opt/app/bin/churn", "--serve"],
                             labels={"org.opencontainers.image.version": version, **labels})


def _runtime(text: str) -> list[str]:
    """The instructions of the last stage (the image people run)."""
    last = text.rindex(f"FROM {BASE}\n")
    return [line.split(" ", 1)[0] for line in text[last:].splitlines() if line and line[0].isupper()]


def test_three_stages_from_the_pinned_base_and_nothing_resolved_inside() -> None:
    text = _render()
    assert text.count(f"FROM {BASE}") == 2 and "FROM deps AS app" in text and f"FROM {BASE} AS deps" in text
    installs = [line for line in text.splitlines() if " install " in line]
    assert len(installs) == 2 and all("--no-index" in x and "--require-hashes" in x and "--only-binary=:all:" in x for x in installs)
    assert "# syntax=" not in text and "\nARG " not in text


def test_the_runtime_stage_puts_the_product_after_everything_that_does_not_change() -> None:
    assert _runtime(_render()) == ["FROM", "RUN", "COPY", "ENV", "USER", "ENTRYPOINT", "CMD", "COPY", "LABEL"]
    text = _render()
    assert text.index("COPY --from=deps /opt/venv") < text.index("USER 10001:10001") < text.index("COPY --from=app /opt/app")


def test_a_new_version_with_the_same_dependencies_changes_nothing_before_the_app_stage() -> None:
    one, two = _render("1.0"), _render("1.1")
    cut = "FROM deps AS app"
    assert one[one.index("\n"):one.index(cut)] == two[two.index("\n"):two.index(cut)]
    assert one != two


def test_entrypoint_is_exec_form_and_labels_are_sorted_and_quoted() -> None:
    text = _render(**{"a.title": 'say "hi" \\ bye'})
    assert 'ENTRYPOINT ["/opt/app/bin/churn", "--serve"]' in text
    label_block = text[text.rindex("LABEL "):]
    assert label_block.index('"a.title"') < label_block.index('"org.opencontainers.image.version"')
    assert '"a.title"="say \\"hi\\" \\\\ bye"' in label_block


def test_a_release_without_dependencies_installs_no_lock() -> None:
    text = _render(has_deps=False)
    assert "# (the release has no dependencies)" in text and "-r /tmp/ci-kit/deps.lock" not in text
    assert "-r /tmp/ci-kit/deps.lock" in _render(has_deps=True)


def test_the_image_runs_as_a_non_root_user_without_pip_in_its_venv() -> None:
    text = _render()
    assert "USER 10001:10001" in text and "venv --without-pip /opt/venv" in text
    assert "--python /opt/venv/bin/python" in text  # pip from a throwaway venv installs into the runtime one
