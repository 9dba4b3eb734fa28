"""Request and answer models of ``/api/cte/configurations``, and the columns their fields are stored in."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator, with_config
from typing_extensions import TypedDict

from cte_common.events import TagsStrategy
from cte_common.indicators import IndicatorType
from cte_common.sightings import AgingCriteria, AgingUnit, SourceConfiguration

PLUGINS = ("api_source", "netskope")
Plugin = Literal["api_source", "netskope"]
# The reference's plugin ids (its plugin packages, and their module paths), accepted for ours.
PLUGIN_ALIASES = {
    "api_sources": "api_source",
    "netskope.plugins.Default.api_sources.main": "api_source",
    "netskope.plugins.Default.netskope.main": "netskope",
}


def plugin_id(value: Any) -> Any:
    """Ours for one of the reference's plugin ids; anything else as given (validated as a Plugin)."""
    return PLUGIN_ALIASES.get(value, value) if isinstance(value, str) else value


class ConfigurationIn(BaseModel):
    """A plugin configuration (Settings > Plugins), in the reference's field names."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    plugin: Annotated[Plugin, BeforeValidator(plugin_id)]
    active: bool = True
    ageAfterDays: int = Field(default=90, ge=0, le=365)
    # When given, replaces ageAfterDays (which then only shows the reference's view).
    agingCriteria: AgingCriteria | None = None
    reputation: int = Field(default=0, ge=0, le=10)
    sslValidation: bool = True
    useProxy: bool = False
    tagsAggregateStrategy: TagsStrategy = "append"
    tenant: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _tenant_for_netskope(self) -> ConfigurationIn:
        if self.plugin == "netskope" and not self.tenant:
            raise ValueError("a netskope configuration needs a tenant")
        return self


# What ingest needs to know of a source configuration.
ConfigurationRow = SourceConfiguration


class NetskopeParameters(BaseModel):
    """Parameters of the Netskope plugin as a source (alert polling)."""

    model_config = ConfigDict(extra="forbid")

    enablePolling: bool = False
    threatDataTypes: Literal["Malware", "URL", "Both"] = "Both"
    initialRangeDays: int = Field(default=7, ge=0, le=365)


class ConfigurationPatch(BaseModel):
    """Fields of a configuration that an update may change (not its name or plugin)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    active: bool | None = None
    ageAfterDays: int | None = Field(default=None, ge=0, le=365)
    agingCriteria: AgingCriteria | None = None
    reputation: int | None = Field(default=None, ge=0, le=10)
    sslValidation: bool | None = None
    useProxy: bool | None = None
    tagsAggregateStrategy: TagsStrategy | None = None
    tenant: str | None = None
    parameters: dict[str, Any] | None = None


# The fields an update may set to null; null leaves any other as it is (it cannot be empty).
CLEARABLE = ("agingCriteria", "tenant", "parameters")

CONFIG_COLUMNS = {
    "active": "active",
    "ageAfterDays": "age_after_days",
    "agingCriteria": "aging",
    "reputation": "reputation",
    "sslValidation": "ssl_validation",
    "useProxy": "use_proxy",
    "tagsAggregateStrategy": "tags_aggregate_strategy",
    "tenant": "tenant",
    "parameters": "parameters",
}


# Answers (TypedDicts: see ingest_api.shared). Aging criteria are stored as given (an update stores only
# the fields it names; the defaults apply to the rest), as jsonb, which gives an object's keys back
# shortest first, then bytewise: the answers have always shown them so, and these declare them in that order.


@with_config(ConfigDict(extra="forbid"))
class StoredAgingSpan(TypedDict):
    unit: NotRequired[AgingUnit]
    value: int


@with_config(ConfigDict(extra="forbid"))
class StoredAgingCriteria(TypedDict):
    """``AgingCriteria`` as stored."""

    base: NotRequired[Literal["ingest", "firstSeen", "lastSeen"]]
    unit: NotRequired[AgingUnit]
    value: int
    perType: NotRequired[dict[IndicatorType, StoredAgingSpan]]


@with_config(ConfigDict(extra="forbid"))
class Configuration(TypedDict):
    """A plugin configuration as the API shows it."""

    name: str
    plugin: Plugin
    active: bool
    ageAfterDays: int
    agingCriteria: StoredAgingCriteria | None
    reputation: int
    sslValidation: bool
    useProxy: bool
    tagsAggregateStrategy: TagsStrategy
    tenant: str | None
    # The plugin's own: none for the API Source, NetskopeParameters' fields for Netskope.
    parameters: dict[str, bool | int | str]
    createdAt: datetime
    updatedAt: datetime


@with_config(ConfigDict(extra="forbid"))
class ConfigurationDeleted(TypedDict):
    deleted: str
    indicatorsRemoved: int


class ConfigurationRef(BaseModel):
    """The body of the reference's ``DELETE /api/cte/configuration``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    keepData: bool = True


class PluginConfigurationIn(ConfigurationIn):
    """The body of the reference's ``POST /api/cte/plugins/configurations/{plugin_id}``: the plugin is the path's."""

    plugin: Annotated[Plugin | None, BeforeValidator(plugin_id)] = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _tenant_for_netskope(self) -> PluginConfigurationIn:
        return self  # checked once the path's plugin is known


class NamedConfigurationPatch(ConfigurationPatch):
    """The body of the reference's ``PATCH /api/cte/plugins/configurations``: the name and what changes."""

    name: str = Field(min_length=1, max_length=200)
