"""The conformance suite: every declared component of a plugin, checked the same way.

For a plugin ``NAME`` the cases are, per declared component: ``registered`` (its name is in
the registry the manifest names), ``build`` (from its example's default config), ``behaviour``
(the kind's contract on tiny generated inputs, see :mod:`.checks`) and ``determinism`` (two
runs under one seed give identical outputs) -- the last two for the kinds that run on inputs,
not for a ``build``-only kind (stages, hooks, metrics); and per config the plugin ships:
``config`` (it parses, with its ``_base_`` chain, and its stages build).  A declared component
without an example fails; one whose example gives a ``skip`` reason is reported as skipped.

Used by ``wsss-run --check-plugin NAME``, ``pytest --wsss-plugin NAME`` and
:func:`check_plugin` in a plugin's own tests.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, List, Mapping, Optional, Sequence

from .checks import (EXERCISES, ConformanceFailure, default_inputs_for,
                     first_difference, seed_everything)
from .examples import ComponentExample, as_mapping

SEED = 0
COMPONENT_CHECKS = ('registered', 'build', 'behaviour', 'determinism')
PASSED, FAILED, SKIPPED = 'passed', 'failed', 'skipped'


@dataclasses.dataclass(frozen=True)
class Case:
    """One check of one component (or one config) of one plugin."""
    plugin: str
    subject: str                     # component name, or the config's relative path
    check: str                       # one of COMPONENT_CHECKS, or 'config'
    registry: str = ''
    example: Optional[ComponentExample] = None

    @property
    def id(self) -> str:
        return f'{self.plugin}::{self.subject}::{self.check}'


@dataclasses.dataclass(frozen=True)
class CheckResult:
    case: Case
    status: str                      # passed / failed / skipped
    detail: str = ''


@dataclasses.dataclass(frozen=True)
class ConformanceReport:
    plugin: str
    results: Sequence[CheckResult]

    @property
    def ok(self) -> bool:
        return bool(self.results) and not self.failures

    @property
    def failures(self) -> List[CheckResult]:
        return [r for r in self.results if r.status == FAILED]

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    def format(self, verbose: bool = False) -> str:
        """A line per failure (and per check with ``verbose``), then the totals."""
        lines = []
        for r in self.results:
            if verbose or r.status == FAILED:
                detail = f': {r.detail}' if r.detail else ''
                lines.append(f'{r.status.upper():7s} {r.case.id}{detail}')
        lines.append(f"plugin '{self.plugin}': {self.count(PASSED)} passed, "
                     f'{self.count(FAILED)} failed, {self.count(SKIPPED)} skipped')
        return '\n'.join(lines)


class PluginNotCheckable(RuntimeError):
    """The plugin is not installed or did not load; the message says why."""


# ----------------------------------------------------------------------------- cases
def load_for_checking(name: str, plugin_set=None):
    """The loaded :class:`~wsss_core.plugin_loader.PluginSet` holding plugin ``name`` (``ok``)."""
    from ...plugin_loader import load_plugins
    plugin_set = plugin_set if plugin_set is not None else load_plugins()
    if name not in plugin_set:
        raise PluginNotCheckable(f"no plugin named '{name}' is installed; installed: "
                                 f"{', '.join(plugin_set.names())}")
    record = plugin_set[name]
    if record.status != 'ok':
        raise PluginNotCheckable(f"plugin '{name}' is {record.status}: {record.reason}")
    return plugin_set


def declared_examples(name: str, plugin_set) -> Mapping[str, ComponentExample]:
    """The plugin's answer to ``wsss_conformance_examples()`` (empty if it has no answer).

    Raises:
        PluginNotCheckable: the answer could not be had (its examples module does not import,
            ``examples()`` raises, or returns something else than one ComponentExample per
            name); the message names the plugin and the cause.
    """
    from ...plugin_loader import _call_one
    obj = plugin_set.manager.get_plugin(name)
    try:
        answers = _call_one(plugin_set.manager, 'wsss_conformance_examples', obj) if obj else []
        return as_mapping([ex for answer in answers or [] for ex in (answer or [])])
    except Exception as exc:  # noqa: BLE001 - a plugin's examples are third-party code
        module = getattr(obj, 'conformance', None)
        where = f'examples() of {module}' if module else 'its wsss_conformance_examples() hook'
        raise PluginNotCheckable(f"plugin '{name}': its conformance examples could not be read "
                                 f'({where}): {type(exc).__name__}: {exc}') from exc


def plugin_cases(name: str, plugin_set=None) -> List[Case]:
    """Every case of plugin ``name``: its components' checks, then one per shipped config."""
    plugin_set = load_for_checking(name, plugin_set)
    record = plugin_set[name]
    examples = declared_examples(name, plugin_set)
    cases = [Case(name, comp, check, registry, examples.get(comp))
             for registry, comps in record.components.items() for comp in comps
             for check in component_checks(examples.get(comp), registry)]
    undeclared = sorted(set(examples) - set(record.manifest.component_names()))
    cases += [Case(name, comp, 'declared', '', examples[comp]) for comp in undeclared]
    cases += [Case(name, rel, 'config') for rel in shipped_configs(record)]
    return cases


def component_checks(example: Optional[ComponentExample], registry: str) -> tuple:
    """The checks a component gets: all four when its kind runs code on inputs; registered
    + build for a ``build`` kind; registered + ``example`` (failed when missing, skipped with
    the reason) when there is no example to run."""
    if example is None or example.skip:
        return ('registered', 'example')
    if example.resolved_kind(registry) in (None, 'build'):
        return ('registered', 'build')
    return COMPONENT_CHECKS


def shipped_configs(record) -> List[str]:
    """The ``.py`` configs of the plugin's ``config_package`` (relative paths)."""
    from ...config import _plugin_config_dir, list_configs
    if record.manifest is None or record.manifest.config_package is None:
        return []
    return list_configs(_plugin_config_dir(record.name))


# ----------------------------------------------------------------------------- running
def run_case(case: Case) -> CheckResult:
    """Run one case; never raises (a failure is a ``failed`` result with the reason)."""
    try:
        return _run(case)
    except ConformanceFailure as exc:
        return CheckResult(case, FAILED, str(exc))
    except Exception as exc:  # noqa: BLE001 - any crash of the component is a finding
        return CheckResult(case, FAILED, f'{type(exc).__name__}: {exc}')


def _run(case: Case) -> CheckResult:
    if case.check == 'config':
        return _check_config(case)
    if case.check == 'declared':
        return CheckResult(case, FAILED, f'an example is given for {case.subject!r}, which the '
                                         "plugin's manifest does not declare")
    if case.check == 'registered':
        return _check_registered(case)
    ex = case.example
    if case.check == 'example':
        if ex is not None and ex.skip:
            return CheckResult(case, SKIPPED, ex.skip)
        return CheckResult(case, FAILED, f'no conformance example for {case.subject!r}: add '
                           f"ComponentExample('{case.subject}', cfg=...) (or with skip='why') "
                           "to examples() in the plugin's conformance_examples module (or "
                           'return it from its wsss_conformance_examples() hook)')
    kind = ex.resolved_kind(case.registry)
    if kind is None:
        return CheckResult(case, FAILED, f'{case.registry} components need an explicit kind '
                           f"(one of 'module', 'classifier', 'loss')")
    if case.check == 'build':
        _build(case)
        return CheckResult(case, PASSED, kind)
    if case.check == 'behaviour':
        exercise(case, kind)
        return CheckResult(case, PASSED, kind)
    first, second = exercise(case, kind), exercise(case, kind)
    diff = first_difference(first, second)
    if diff:
        return CheckResult(case, FAILED, f'two runs with seed {SEED} differ: {diff}')
    return CheckResult(case, PASSED, kind)


def _check_registered(case: Case) -> CheckResult:
    from ...registry import ALL_REGISTRIES
    registry = ALL_REGISTRIES.get(case.registry)
    if registry is None:
        return CheckResult(case, FAILED, f'unknown registry {case.registry!r}')
    if registry.get(case.subject) is None:
        return CheckResult(case, FAILED, f'{case.subject!r} is declared in {case.registry} but '
                                         'not registered there by wsss_register()')
    return CheckResult(case, PASSED)


def _build(case: Case):
    from ...registry import ALL_REGISTRIES, build
    obj = build(case.example.build_cfg(), ALL_REGISTRIES[case.registry])
    if obj is None:
        raise ConformanceFailure('building returned None')
    from ...models.protocols import PROTOCOLS, ModelContractError, require_model
    for role in case.example.roles:
        try:
            require_model(obj, PROTOCOLS[role], f'the role {role!r} it claims')
        except ModelContractError as exc:
            raise ConformanceFailure(str(exc)) from None
    return obj


def exercise(case: Case, kind: str):
    """Seed, build, make the inputs, run the kind's checks; return the outputs."""
    ex = case.example
    gen = seed_everything(SEED)
    obj = _build(case)
    make_inputs = ex.inputs or default_inputs_for(kind, ex.num_classes)
    data = make_inputs(gen)
    return EXERCISES[kind](obj, data, ex)


def _check_config(case: Case) -> CheckResult:
    from ...config import load_config
    from ...pipeline.pipeline import Pipeline
    cfg = load_config(f'{case.plugin}::{case.subject}')
    if cfg.get('stages'):
        stages = Pipeline._build_stages(cfg.stages)
        return CheckResult(case, PASSED, f'{len(stages)} stages')
    return CheckResult(case, PASSED, 'no stages (a _base_ fragment)')


def check_plugin(name: str, plugin_set=None, checks: Optional[Iterable[str]] = None
                 ) -> ConformanceReport:
    """Run every case of plugin ``name`` (or only the ``checks`` named) and report."""
    wanted = set(checks) if checks else None
    cases = [c for c in plugin_cases(name, plugin_set) if wanted is None or c.check in wanted]
    return ConformanceReport(name, [run_case(c) for c in cases])
