"""Plugin configurations without I/O: the output shape and the plugins' parameters."""

from __future__ import annotations

from typing import Any

from ingest_api.configurations.schemas import Configuration, NetskopeParameters


def configuration_out(row: dict[str, Any]) -> Configuration:
    return {
        "name": row["name"],
        "plugin": row["plugin"],
        "active": row["active"],
        "ageAfterDays": row["age_after_days"],
        "agingCriteria": row.get("aging"),
        "reputation": row["reputation"],
        "sslValidation": row["ssl_validation"],
        "useProxy": row["use_proxy"],
        "tagsAggregateStrategy": row["tags_aggregate_strategy"],
        "tenant": row["tenant"],
        "parameters": row["parameters"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


def check_parameters(plugin: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """Validate a plugin's parameters; the API Source has none."""
    if plugin == "netskope":
        return NetskopeParameters.model_validate(parameters).model_dump()
    if parameters:
        raise ValueError("the api_source plugin takes no parameters")
    return {}
