"""Declarations and implementations agree: every method's and task's facts are stated once, in its torch-free
declaration, and its implementation is what the declaration names."""

from __future__ import annotations

import pytest

import methods
from methods.registry import _DECLARED
from trainables import tasks


@pytest.mark.parametrize("name", methods.names())
def test_a_method_implementation_carries_its_declaration(name):
    decl, cls = methods.declared(name), methods.get(name)
    assert cls.declaration is decl and cls.name == name
    assert f"{cls.__module__}:{cls.__qualname__}" == decl.implementation
    assert (cls.Config, cls.targets_sparsity, cls.learns_sparsity, cls.packable, cls.variant_columns) == (
        decl.Config,
        decl.targets_sparsity,
        decl.learns_sparsity,
        decl.packable,
        decl.variant_columns,
    )


def test_an_implementation_that_restates_its_declaration_is_refused(monkeypatch):
    where = "test_an_implementation_that_restates_its_declaration_is_refused.<locals>"
    monkeypatch.setitem(
        _DECLARED, "twice", methods.Declaration("twice", methods.MethodConfig, f"{__name__}:{where}.Twice")
    )

    with pytest.raises(TypeError, match="repeats packable"):

        @methods.register
        class Twice(methods.Sparsifier):
            name = "twice"
            packable = True


def test_an_unknown_method_or_task_names_the_registered_ones():
    with pytest.raises(KeyError, match="unknown method 'nope'; registered: dense, fixed_mask"):
        methods.declared("nope")
    with pytest.raises(KeyError, match="unknown task 'nope'; registered: bars_cnn, cubist_spiral"):
        tasks.get("nope")


@pytest.mark.parametrize("name", tasks.names())
def test_a_task_implementation_subclasses_its_declaration(name):
    spec, cls = tasks.declared(name), tasks.get(name)
    assert issubclass(cls, spec) and cls.name == name
    assert f"{cls.__module__}:{cls.__qualname__}" == spec.implementation
    assert not [fact for fact in spec.facts if fact in vars(cls)]
    assert spec.packable == (getattr(cls, "Packed", None) is not None)


@pytest.mark.parametrize("name", ["bars_cnn", "cubist_spiral"])
def test_a_supervised_task_declares_its_training_set_size(name):
    cls = tasks.get(name)
    assert len(cls.train_data()[0]) == tasks.declared(name).train_size
