"""The plugin manager: entry points of the group `arena`, loaded once per process.

Built-in plugins come through the same entry points as third-party ones (see pyproject.toml), so the
core never names a plugin. `ARENA_LOAD_PLUGINS=a,b` restricts loading to those entry-point names
(useful to bisect a broken third-party plugin); `ARENA_LOAD_PLUGINS=` (empty) loads none.

A plugin that fails to import is skipped with a warning, so one broken package does not stop
commands that never use it; it is an error only where it is named: in `ARENA_LOAD_PLUGINS`, or
when a config asks for a plugin nobody registered (the error then names the broken package).
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import entry_points
from types import ModuleType

import pluggy

from arena_core import hookspecs
from arena_core.errors import UsageError
from arena_core.registry import Registry

GROUP = "arena"

_pm: pluggy.PluginManager | None = None
_registry: Registry | None = None
_broken: dict[str, str] = {}  # entry-point name -> why it failed to load
log = logging.getLogger("arena.plugins")


def get_plugin_manager() -> pluggy.PluginManager:
    global _pm
    if _pm is None:
        _broken.clear()
        pm = pluggy.PluginManager(GROUP)
        pm.add_hookspecs(hookspecs)
        allowed = os.environ.get("ARENA_LOAD_PLUGINS")
        names = None if allowed is None else {n.strip() for n in allowed.split(",") if n.strip()}
        for ep in entry_points(group=GROUP):
            if names is not None and ep.name not in names:
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken third-party plugin must say who it is
                dist = ep.dist.name if ep.dist else ep.value
                why = f"plugin '{ep.name}' from {dist} failed to load: {type(exc).__name__}: {exc}"
                if names is not None:  # asked for by name: that is a use of it
                    raise UsageError(why) from exc
                _broken[ep.name] = why
                log.warning("arena: warning: %s; skipped (commands that do not use it go on)", why)
                continue
            origin = ep.dist.name if ep.dist else ep.value
            name = f"{origin}:{ep.name}"
            # The same entry point can appear twice (an editable and a regular install).
            if pm.get_plugin(name) is None and not pm.is_registered(module):
                pm.register(module, name=name)
        _pm = pm
    return _pm


def get_registry() -> Registry:
    """The registry filled by every loaded plugin's `arena_register` hook."""
    global _registry
    if _registry is None:
        pm = get_plugin_manager()
        registry = Registry()
        # Call each implementation on its own so every entry knows which plugin added it.
        for impl in pm.hook.arena_register.get_hookimpls():
            registry.origin = impl.plugin_name.split(":")[0]
            before = dict(registry.entries)
            try:
                impl.function(registry=registry)
            except UsageError:  # a name registered twice: which one is meant is unclear
                raise
            except Exception as exc:  # its registration failed: skip the plugin, as on import
                registry.entries = before
                why = f"plugin '{impl.plugin_name}' failed to register: {type(exc).__name__}: {exc}"
                _broken[impl.plugin_name] = why
                log.warning("arena: warning: %s; skipped", why)
        registry.origin = "unknown"
        registry.broken = dict(_broken)
        _registry = registry
    return _registry


def register_plugin(module: ModuleType | object, name: str) -> None:
    """Add a plugin at run time (tests, notebooks); the registry is rebuilt on next use."""
    global _registry
    get_plugin_manager().register(module, name=name)
    _registry = None


def unregister_plugin(name: str) -> None:
    global _registry
    pm = get_plugin_manager()
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin)
    _registry = None


def reset() -> None:
    """Forget loaded plugins (tests that change ARENA_LOAD_PLUGINS)."""
    global _pm, _registry
    _pm = None
    _registry = None
