import pytest
import torch

from factories import ARCHS, make_model_dir
from polydistill.architectures import task_of
from polydistill.modeling import load_model, load_tokenizer


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("task", ["sequence", "token", "base"])
def test_tiny_models_round_trip(tmp_path, arch, task):
    path = make_model_dir(tmp_path, arch, task)
    model = load_model(path)
    tok = load_tokenizer(path)
    assert task_of(model.config) == task
    batch = tok(["hello world", "hola mundo"], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch)
    assert out[0].shape[0] == 2
    assert (path / "model.safetensors").is_file()
