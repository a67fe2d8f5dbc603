"""The variable resolver every reader uses: each syntax as its tool reads it."""

from __future__ import annotations

import pytest

from hfdeploy.audit.shellwords import shell_commands, shell_words
from hfdeploy.audit.variables import (
    Binding,
    Scope,
    dotenv,
    expand_kubernetes,
    interpolate,
)


def _scope(outside: str | None = "the environment", **values: str | None) -> Scope:
    scope = Scope(outside)
    for line, (name, value) in enumerate(values.items(), 1):
        scope.bind(Binding(name, value, line, "env", file="f"))
    return scope


def test_kubernetes_expands_defined_variables_and_keeps_the_rest() -> None:
    scope = _scope(None, MODEL="org/m", TOKEN=None)
    found = expand_kubernetes("--model=$(MODEL) $(MISSING) $(TOKEN) $$(MODEL) $$$$ $x", scope)
    assert found.text == "--model=org/m $(MISSING) $(TOKEN) $(MODEL) $$ $x"
    assert [(r.written, r.state) for r in found.refs] == [
        ("$(MODEL)", "set"), ("$(MISSING)", "unset"), ("$(TOKEN)", "unknown"),
    ]  # fmt: skip
    assert found.text[slice(*found.spans[0])] == "org/m"


def test_kubernetes_variables_from_an_opaque_source_are_unknown_not_unset() -> None:
    scope = _scope(None)
    scope.opaque.append("Secret llm")
    assert expand_kubernetes("$(MODEL)", scope).refs[0].state == "unknown"


@pytest.mark.parametrize(
    ("text", "value", "state"),
    [
        ("${REV:-main}", "main", "default"),  # unset: the default
        ("${EMPTY:-main}", "main", "default"),  # set but empty, with `:`: the default
        ("${EMPTY-main}", "", "set"),  # set but empty, without `:`: empty
        ("${SET:-main}", "abc", "set"),
        ("${REV:?give a sha}", "${REV}", "unknown"),  # compose keeps it one word
        ("${SET:+--revision $SET}", "--revision abc", "set"),
        ("${REV:+--revision $REV}", "", "default"),
        ("$SET-x", "abc-x", "set"),
        ("$$SET", "$SET", None),  # compose's escape: the container's shell expands it
    ],
)
def test_compose_interpolation(text: str, value: str, state: str | None) -> None:
    found = interpolate(text, _scope(EMPTY="", SET="abc"))
    assert found.text == value
    assert (found.refs[0].state if found.refs else None) == state


def test_shell_words_quote_expand_and_split_as_a_shell_does() -> None:
    scope = _scope(MODEL="org/m", ARGS="--tp 2  --max-model-len 8192")
    words = shell_words(
        "vllm serve \"$MODEL\" $ARGS '$MODEL' ${REV:-main} $(nproc) 2>&1 | tee log # done",
        scope,
    )
    assert [w.text for w, _ in words] == [
        "vllm", "serve", "org/m", "--tp", "2", "--max-model-len", "8192", "$MODEL", "main",
        "$(nproc)", "|", "tee", "log",
    ]  # fmt: skip
    refs = {w.text: [r.state for r in w.refs] for w, _ in words}
    assert refs["org/m"] == ["set"] and refs["--tp"] == ["set"] and refs["$MODEL"] == []
    assert refs["main"] == ["default"] and refs["$(nproc)"] == ["unknown"]


def test_shell_default_assignment_binds() -> None:
    scope = _scope()
    shell_words(': "${MODEL:=org/default}"', scope)
    found = scope.get("MODEL")
    assert found is not None and found.value == "org/default"
    assert shell_words("${1:-org/positional}", scope)[0][0].text == "org/positional"


def test_shell_commands_split_on_operators_and_skip_here_documents() -> None:
    text = (
        "A=1; B=2 && vllm serve x\n"
        "cat > f <<'EOF'\nvllm serve not-a-command\nEOF\n"
        'echo "a; b" ${X:-y;z} $(c; d)  # e; f\n'
    )
    assert [text[s:e].strip() for s, e in shell_commands(text)] == [
        "A=1", "B=2", "vllm serve x", "cat > f <<'EOF'", 'echo "a; b" ${X:-y;z} $(c; d)  # e; f',
    ]  # fmt: skip


def test_env_files() -> None:
    text = (
        "# settings\nexport MODEL_ID=org/m\nREVISION='main'  \n"
        'TOKEN="a # b" # comment\nEMPTY=\nBROKEN LINE\nPLAIN=x # note\n'
    )
    found = {b.name: (b.value, b.line) for b in dotenv(text, file=".env", origin=".env")}
    assert found == {
        "MODEL_ID": ("org/m", 2), "REVISION": ("main", 3), "TOKEN": ("a # b", 4),
        "EMPTY": ("", 5), "PLAIN": ("x", 7),
    }  # fmt: skip


def test_where_a_value_comes_from() -> None:
    scope = _scope(None, MODEL="org/m")
    scope.bind(Binding("REV", None, 9, "Secret hf key rev", file="f"))
    model, rev, unset = expand_kubernetes("$(MODEL) $(REV) $(NONE)", scope).refs
    assert model.where("f") == "`$(MODEL)`, env on line 1"
    assert model.where("other") == "`$(MODEL)`, env in f:1"
    assert rev.where("f") == "`$(REV)`, Secret hf key rev on line 9, unresolved"
    assert unset.where("f") == "`$(NONE)`, which nothing in the files sets"
