"""The stories and surges keys: ``stories``, ``story_window``, ``surges``, ``surge``."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitor.config import load_settings
from monitor.exceptions import ConfigErrors
from monitor.models import StoryMode
from monitor.pipeline import Ruleset

BASE = """
{defaults}
channels:
  desk:
    chat: "@desk"
{desk}
  other: {{chat: "@other"}}
rules:
  - name: astana
    any: [Astana]
    notify: [desk, other]
{rule}
"""


def load(write_config, desk: str = "", defaults: str = "", rule: str = ""):
    text = BASE.format(defaults=defaults, desk=desk, rule=rule)
    return load_settings(write_config(text), env={})


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ("edit", StoryMode.EDIT),
        ("reply", StoryMode.REPLY),
        ("off", StoryMode.OFF),  # YAML reads this as false
        ("'off'", StoryMode.OFF),
        ("false", StoryMode.OFF),
        ("no", StoryMode.OFF),
    ],
)
def test_stories_modes_and_yamls_false(write_config, value, mode):
    settings = load(write_config, desk=f"    stories: {value}")
    assert settings.channels["desk"].stories == mode
    assert settings.channels["other"].stories == StoryMode.EDIT  # the default


@pytest.mark.parametrize(
    ("desk", "message"),
    [
        ("    stories: true", "stories: expected edit, reply or off"),
        ("    stories: edits", "expected edit or reply or off, not 'edits'"),
        ("    story_window: 0", "duration must be longer than zero"),
        ("    story_window: 8d", "story_window: at most 7d"),
        ("    story_window: soon", "bad duration 'soon'"),
        ("    surges: sometimes", "expected true or false"),
    ],
)
def test_bad_values_are_located(write_config, desk, message):
    with pytest.raises(ConfigErrors) as caught:
        load(write_config, desk=desk)
    text = str(caught.value)
    assert message in text and "monitor.yaml:4:" in text  # the line of the desk's key


def test_story_window_default_and_override(write_config):
    settings = load(
        write_config, defaults="defaults:\n  story_window: 6h", desk="    story_window: 2h"
    )
    assert settings.channels["desk"].story_window == timedelta(hours=2)
    assert settings.channels["other"].story_window == timedelta(hours=6)
    plain = load(write_config)
    assert plain.channels["other"].story_window == timedelta(hours=24)


def test_surge_on_the_rule_or_every_rule_of_a_channel(write_config):
    settings = load(write_config)
    assert Ruleset.from_settings(settings).surge_rules == frozenset()
    by_rule = load(write_config, rule="    surge: true")
    assert by_rule.rules[0].surge and Ruleset.from_settings(by_rule).surge_rules == {"astana"}
    by_channel = load(write_config, desk="    surges: true")
    assert Ruleset.from_settings(by_channel).surge_rules == {"astana"}
    with pytest.raises(ConfigErrors, match="expected true or false"):
        load(write_config, rule="    surge: 3")
