"""What a run records of the machine that produced it."""

import torch

from trainables.provenance import cpu_fields, device_kind, provenance


def test_the_cpu_kind_names_vendor_family_model_and_atens_capability():
    fields = cpu_fields()
    kind = provenance("cpu", 1)["device_kind"]
    assert kind == device_kind("cpu")
    vendor, family_model, capability = kind.split(" ")
    assert vendor == fields.get("vendor_id", "unknown")
    assert family_model == f"{fields.get('cpu family', '?')}/{fields.get('model', '?')}"
    assert capability == torch.backends.cpu.get_cpu_capability()  # e.g. AVX2: it picks the kernels, and the floats
