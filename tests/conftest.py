import pytest

from helpers import installed


@pytest.fixture(scope="session")
def installed_python(tmp_path_factory) -> str:
    """``python`` of a fresh venv with this checkout installed as a package (not editable);
    see helpers/installed.py."""
    return installed.install(str(tmp_path_factory.mktemp("installed")))
