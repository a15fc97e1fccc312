"""CloudFormation intrinsic functions, resolved as CloudFormation would for one stack, region and
account, with resources named by the local stack.

Long for one module because it is one table of small evaluators (`Resolver._intrinsics`): every
intrinsic CloudFormation documents for templates, each a few lines, sharing the parameter and
condition state. Depends on the standard library and `cloudformation` only.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

from orgsync.local.errors import TemplateError
from orgsync.local.template.cloudformation import queue_url_for, scalar_text, truthy

__all__ = ["Resolver"]


class _NoValue:
    """AWS::NoValue: the property it stands for is removed."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


_NO_VALUE: Final = _NoValue()
_SUB_VARIABLE: Final = re.compile(r"\$\{([^}]*)\}")


class Resolver:
    """Evaluates intrinsics as CloudFormation would for one stack, region and account."""

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        parameters: Mapping[str, str],
        region: str,
        account_id: str,
        stack_name: str,
        endpoint_url: str | None,
        physical_ids: Mapping[str, str],
    ) -> None:
        self.template = template
        self.region = region
        self.account_id = account_id
        self.partition = "aws-cn" if region.startswith("cn-") else "aws"
        if region.startswith("us-gov-"):
            self.partition = "aws-us-gov"
        self.stack_name = stack_name
        self.endpoint_url = endpoint_url
        self.physical_ids = dict(physical_ids)
        self.resources: Mapping[str, Any] = template.get("Resources") or {}
        self.parameters = self._bind_parameters(parameters)
        self._conditions: dict[str, bool] = {}
        self._resolving: set[str] = set()

    # -- parameters and conditions

    def _bind_parameters(self, overrides: Mapping[str, str]) -> dict[str, str | list[str]]:
        declared: Mapping[str, Any] = self.template.get("Parameters") or {}
        unknown = sorted(set(overrides) - set(declared))
        if unknown:
            raise TemplateError(f"unknown template parameters: {', '.join(unknown)}")
        bound: dict[str, str | list[str]] = {}
        for name, declared_spec in declared.items():
            spec = declared_spec or {}
            if name in overrides:
                raw = str(overrides[name])
            elif "Default" in spec:
                raw = scalar_text(spec["Default"])
            else:
                raise TemplateError(f"template parameter {name} has no default: pass a value")
            allowed = spec.get("AllowedValues")
            if allowed is not None and raw not in [scalar_text(v) for v in allowed]:
                raise TemplateError(f"parameter {name}={raw!r} is not one of {allowed}")
            pattern = spec.get("AllowedPattern")
            if pattern is not None and re.fullmatch(str(pattern), raw) is None:
                raise TemplateError(f"parameter {name}={raw!r} does not match {pattern}")
            kind = str(spec.get("Type", "String"))
            if kind.startswith("List<") or kind == "CommaDelimitedList":
                bound[name] = [item.strip() for item in raw.split(",")] if raw else []
            else:
                bound[name] = raw
        return bound

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions: Mapping[str, Any] = self.template.get("Conditions") or {}
            if name not in conditions:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = self._truth(conditions[name])
        return self._conditions[name]

    def _truth(self, value: Any) -> bool:
        resolved = self.resolve(value)
        if isinstance(resolved, bool):
            return resolved
        if isinstance(resolved, str) and resolved.lower() in ("true", "false"):
            return resolved.lower() == "true"
        raise TemplateError(f"condition does not evaluate to a boolean: {value!r}")

    def resource_included(self, logical_id: str) -> bool:
        condition = (self.resources.get(logical_id) or {}).get("Condition")
        return condition is None or self.condition(str(condition))

    # -- resolution

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not _NO_VALUE]
        if isinstance(value, dict):
            if len(value) == 1:
                (key, argument), *_ = value.items()
                handler = self._intrinsics.get(key)
                if handler is not None:
                    return handler(self, argument)
            resolved = {key: self.resolve(item) for key, item in value.items()}
            return {key: item for key, item in resolved.items() if item is not _NO_VALUE}
        return value

    def _ref(self, name: Any) -> Any:
        if not isinstance(name, str):
            raise TemplateError(f"Ref takes a name, got {name!r}")
        if name in self.parameters:
            return self.parameters[name]
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": self.partition,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": (
                f"arn:{self.partition}:cloudformation:{self.region}:{self.account_id}"
                f":stack/{self.stack_name}/00000000-0000-0000-0000-000000000000"
            ),
            "AWS::URLSuffix": "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name == "AWS::NotificationARNs":
            return []
        if name in self.physical_ids:
            return self.physical_ids[name]
        if name in self.resources:
            return self._physical_id(name)
        raise TemplateError(f"Ref to unknown parameter or resource {name}")

    def resource(self, logical_id: str) -> tuple[str, Mapping[str, Any]]:
        resource = self.resources.get(logical_id)
        if not isinstance(resource, dict):
            raise TemplateError(f"unknown resource {logical_id}")
        return str(resource.get("Type", "")), resource.get("Properties") or {}

    def name_of(self, logical_id: str) -> str:
        """A resource's physical name: its name property, or what CloudFormation would make."""
        kind, properties = self.resource(logical_id)
        name_property = _NAME_PROPERTIES.get(kind)
        if name_property is not None and name_property in properties:
            if logical_id in self._resolving:
                raise TemplateError(f"the name of {logical_id} refers to itself")
            self._resolving.add(logical_id)
            try:
                return str(self.resolve(properties[name_property]))
            finally:
                self._resolving.discard(logical_id)
        generated = f"{self.stack_name}-{logical_id}"
        if kind == "AWS::SQS::Queue" and truthy(properties.get("FifoQueue")):
            generated += ".fifo"
        return generated

    def _physical_id(self, logical_id: str) -> str:
        kind, _ = self.resource(logical_id)
        if kind == "AWS::SQS::Queue":
            return queue_url_for(
                self.name_of(logical_id),
                account_id=self.account_id,
                region=self.region,
                endpoint_url=self.endpoint_url,
            )
        if kind in ("AWS::SNS::Topic",):
            return self.arn_of(logical_id)
        return self.name_of(logical_id)

    def arn_of(self, logical_id: str) -> str:
        kind, _ = self.resource(logical_id)
        prefix = f"arn:{self.partition}"
        name = self.name_of(logical_id)
        if kind == "AWS::DynamoDB::Table":
            return f"{prefix}:dynamodb:{self.region}:{self.account_id}:table/{name}"
        if kind == "AWS::SQS::Queue":
            return f"{prefix}:sqs:{self.region}:{self.account_id}:{name}"
        if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            return f"{prefix}:lambda:{self.region}:{self.account_id}:function:{name}"
        if kind == "AWS::Pipes::Pipe":
            return f"{prefix}:pipes:{self.region}:{self.account_id}:pipe/{name}"
        if kind == "AWS::IAM::Role":
            return f"{prefix}:iam::{self.account_id}:role/{name}"
        if kind == "AWS::Logs::LogGroup":
            return f"{prefix}:logs:{self.region}:{self.account_id}:log-group:{name}:*"
        service = kind.split("::")[1].lower() if kind.count("::") == 2 else "unknown"
        return f"{prefix}:{service}:{self.region}:{self.account_id}:{name}"

    def _get_att(self, argument: Any) -> Any:
        argument = self.resolve(argument)
        if isinstance(argument, str):
            resource, _, attribute = argument.partition(".")
        elif isinstance(argument, list) and len(argument) == 2:
            resource, attribute = str(argument[0]), str(argument[1])
        else:
            raise TemplateError(f"Fn::GetAtt takes [resource, attribute], got {argument!r}")
        kind, _ = self.resource(resource)
        if attribute == "Arn":
            return self.arn_of(resource)
        if kind == "AWS::DynamoDB::Table":
            if attribute == "StreamArn":
                # A placeholder: the real label is a timestamp DynamoDB picks when the stream is
                # enabled, so the local stack reads the live ARN with DescribeTable instead.
                return f"{self.arn_of(resource)}/stream/*"
            raise TemplateError(f"Fn::GetAtt {resource}.{attribute} is not supported locally")
        if kind == "AWS::SQS::Queue":
            if attribute == "QueueName":
                return self.name_of(resource)
            if attribute == "QueueUrl":
                return self._physical_id(resource)
            raise TemplateError(f"Fn::GetAtt {resource}.{attribute} is not supported locally")
        # Resources the local stack does not create (roles, alarms, ...): a stable placeholder.
        return f"{self.name_of(resource)}.{attribute}"

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list) and len(argument) == 2:
            template, variables = argument[0], self.resolve(argument[1]) or {}
        elif isinstance(argument, str):
            template, variables = argument, {}
        else:
            raise TemplateError(f"Fn::Sub takes a string or [string, variables], got {argument!r}")
        if not isinstance(template, str) or not isinstance(variables, dict):
            raise TemplateError(f"malformed Fn::Sub {argument!r}")

        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if expression in variables:
                return scalar_text(variables[expression])
            if "." in expression and not expression.startswith("AWS::"):
                return scalar_text(self._get_att(expression))
            return scalar_text(self._ref(expression))

        return _SUB_VARIABLE.sub(replace, template)

    def _join(self, argument: Any) -> str:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"Fn::Join takes [delimiter, list], got {argument!r}")
        delimiter, items = argument[0], self.resolve(argument[1])
        if not isinstance(items, list):
            raise TemplateError(f"Fn::Join needs a list, got {items!r}")
        return str(delimiter).join(scalar_text(item) for item in items)

    def _select(self, argument: Any) -> Any:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"Fn::Select takes [index, list], got {argument!r}")
        index, items = int(self.resolve(argument[0])), self.resolve(argument[1])
        if not isinstance(items, list) or not 0 <= index < len(items):
            raise TemplateError(f"Fn::Select index {index} out of range of {items!r}")
        return items[index]

    def _split(self, argument: Any) -> list[str]:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"Fn::Split takes [delimiter, string], got {argument!r}")
        return scalar_text(self.resolve(argument[1])).split(str(argument[0]))

    def _equals(self, argument: Any) -> bool:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"Fn::Equals takes two values, got {argument!r}")
        left, right = (self.resolve(item) for item in argument)
        if isinstance(left, (str, int, float, bool)) and isinstance(right, (str, int, float, bool)):
            return scalar_text(left) == scalar_text(right)
        return bool(left == right)

    def _if(self, argument: Any) -> Any:
        if not (isinstance(argument, list) and len(argument) == 3):
            raise TemplateError(f"Fn::If takes [condition, then, else], got {argument!r}")
        chosen = argument[1] if self.condition(str(argument[0])) else argument[2]
        return self.resolve(chosen)

    def _not(self, argument: Any) -> bool:
        if not (isinstance(argument, list) and len(argument) == 1):
            raise TemplateError(f"Fn::Not takes one condition, got {argument!r}")
        return not self._truth(argument[0])

    def _and(self, argument: Any) -> bool:
        if not isinstance(argument, list):
            raise TemplateError(f"Fn::And takes a list, got {argument!r}")
        return all(self._truth(item) for item in argument)

    def _or(self, argument: Any) -> bool:
        if not isinstance(argument, list):
            raise TemplateError(f"Fn::Or takes a list, got {argument!r}")
        return any(self._truth(item) for item in argument)

    def _condition(self, argument: Any) -> bool:
        return self.condition(str(argument))

    def _find_in_map(self, argument: Any) -> Any:
        if not (isinstance(argument, list) and len(argument) in (3, 4)):
            raise TemplateError(f"Fn::FindInMap takes [map, key, key], got {argument!r}")
        map_name, top, second = (scalar_text(self.resolve(item)) for item in argument[:3])
        mappings: Mapping[str, Any] = self.template.get("Mappings") or {}
        try:
            return self.resolve(mappings[map_name][top][second])
        except (KeyError, TypeError) as exc:
            if len(argument) == 4 and isinstance(argument[3], dict):
                return self.resolve(argument[3].get("DefaultValue"))
            raise TemplateError(f"Fn::FindInMap {map_name}/{top}/{second} not found") from exc

    def _get_azs(self, argument: Any) -> list[str]:
        region = scalar_text(self.resolve(argument)) or self.region
        return [f"{region}{zone}" for zone in "abc"]

    def _import_value(self, argument: Any) -> Any:
        raise TemplateError(
            f"Fn::ImportValue {argument!r} needs another stack's exports: not available locally"
        )

    def _base64(self, argument: Any) -> str:
        return base64.b64encode(scalar_text(self.resolve(argument)).encode()).decode()

    def _cidr(self, argument: Any) -> list[str]:
        if not (isinstance(argument, list) and len(argument) == 3):
            raise TemplateError(f"Fn::Cidr takes [block, count, bits], got {argument!r}")
        block, count, bits = (self.resolve(item) for item in argument)
        network = ipaddress.ip_network(str(block), strict=False)
        prefix = network.max_prefixlen - int(bits)
        subnets = network.subnets(new_prefix=prefix)
        return [str(subnet) for _, subnet in zip(range(int(count)), subnets, strict=False)]

    def _length(self, argument: Any) -> int:
        items = self.resolve(argument)
        if not isinstance(items, list):
            raise TemplateError(f"Fn::Length needs a list, got {items!r}")
        return len(items)

    def _to_json_string(self, argument: Any) -> str:
        return json.dumps(self.resolve(argument), separators=(",", ":"))

    _intrinsics: Mapping[str, Callable[[Resolver, Any], Any]] = MappingProxyType(
        {
            "Ref": _ref,
            "Condition": _condition,
            "Fn::GetAtt": _get_att,
            "Fn::Sub": _sub,
            "Fn::Join": _join,
            "Fn::Select": _select,
            "Fn::Split": _split,
            "Fn::Equals": _equals,
            "Fn::If": _if,
            "Fn::Not": _not,
            "Fn::And": _and,
            "Fn::Or": _or,
            "Fn::FindInMap": _find_in_map,
            "Fn::GetAZs": _get_azs,
            "Fn::ImportValue": _import_value,
            "Fn::Base64": _base64,
            "Fn::Cidr": _cidr,
            "Fn::Length": _length,
            "Fn::ToJsonString": _to_json_string,
        }
    )


_NAME_PROPERTIES: Final = MappingProxyType(
    {
        "AWS::DynamoDB::Table": "TableName",
        "AWS::SQS::Queue": "QueueName",
        "AWS::Pipes::Pipe": "Name",
        "AWS::Serverless::Function": "FunctionName",
        "AWS::Lambda::Function": "FunctionName",
        "AWS::IAM::Role": "RoleName",
        "AWS::Logs::LogGroup": "LogGroupName",
        "AWS::SNS::Topic": "TopicName",
        "AWS::CloudWatch::Alarm": "AlarmName",
    }
)
