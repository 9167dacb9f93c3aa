from __future__ import annotations

import pytest
import torch
from neural_factories import write_weights

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory):
    """One complete tiny weights folder (official layouts) shared by the tests that only read it."""
    return write_weights(tmp_path_factory.mktemp("weights"))
