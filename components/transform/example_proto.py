"""tf.Example message classes without importing TensorFlow.

Transform's Beam workers only parse and build tf.Examples; importing TensorFlow
for its generated `example_pb2` would cost every worker process seconds of
start-up. These classes are built from the same schema as TensorFlow's
`tensorflow/core/example/{example,feature}.proto` (field names, numbers and
types), so their bytes are wire-compatible with `tf.train.Example`. They live in
a private descriptor pool, so they never clash with TensorFlow's own classes
when both are loaded in one process.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PACKAGE = "tlpipe.example"
_Field = descriptor_pb2.FieldDescriptorProto


def _message(name: str, *fields: _Field, nested: tuple = (), map_entry: bool = False) -> descriptor_pb2.DescriptorProto:
    message = descriptor_pb2.DescriptorProto(name=name, field=list(fields), nested_type=list(nested))
    if map_entry:
        message.options.map_entry = True
    return message


def _field(
    name: str, number: int, kind: int, *, repeated: bool = False, type_name: str = "", oneof: int | None = None
) -> _Field:
    field = _Field(
        name=name, number=number, type=kind,
        label=_Field.LABEL_REPEATED if repeated else _Field.LABEL_OPTIONAL,
    )
    if type_name:
        field.type_name = f".{_PACKAGE}.{type_name}"
    if oneof is not None:
        field.oneof_index = oneof
    return field


def _build_file() -> descriptor_pb2.FileDescriptorProto:
    """example.proto and feature.proto of TensorFlow, in one proto3 file."""
    feature = _message(
        "Feature",
        _field("bytes_list", 1, _Field.TYPE_MESSAGE, type_name="BytesList", oneof=0),
        _field("float_list", 2, _Field.TYPE_MESSAGE, type_name="FloatList", oneof=0),
        _field("int64_list", 3, _Field.TYPE_MESSAGE, type_name="Int64List", oneof=0),
    )
    feature.oneof_decl.add(name="kind")
    features = _message(
        "Features",
        _field("feature", 1, _Field.TYPE_MESSAGE, repeated=True, type_name="Features.FeatureEntry"),
        nested=(
            _message(
                "FeatureEntry",
                _field("key", 1, _Field.TYPE_STRING),
                _field("value", 2, _Field.TYPE_MESSAGE, type_name="Feature"),
                map_entry=True,
            ),
        ),
    )
    return descriptor_pb2.FileDescriptorProto(
        name="tlpipe/example.proto",
        package=_PACKAGE,
        syntax="proto3",
        message_type=[
            _message("BytesList", _field("value", 1, _Field.TYPE_BYTES, repeated=True)),
            _message("FloatList", _field("value", 1, _Field.TYPE_FLOAT, repeated=True)),
            _message("Int64List", _field("value", 1, _Field.TYPE_INT64, repeated=True)),
            feature,
            features,
            _message("Example", _field("features", 1, _Field.TYPE_MESSAGE, type_name="Features")),
        ],
    )


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_build_file())


def _class(name: str) -> type:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.{name}"))


Example = _class("Example")
Features = _class("Features")
Feature = _class("Feature")
BytesList = _class("BytesList")
Int64List = _class("Int64List")
