import subprocess
import sys

import ml_collections
import pytest

from dface_jax import cli, configs


def _write_config(tmp_path):
    path = tmp_path / "exp.py"
    path.write_text(
        "import ml_collections\n"
        "def get_config(arg=None):\n"
        "    c = ml_collections.ConfigDict()\n"
        "    c.steps = 10 if arg != 'tiny' else 2\n"
        "    c.lr = 3e-4\n"
        "    c.name = 'x'\n"
        "    c.flag = False\n"
        "    c.model = ml_collections.ConfigDict({'dims': (1, 2), 'depth': 6})\n"
        "    return c\n")
    return path


def test_load_config_with_arg_and_overrides(tmp_path):
    path = _write_config(tmp_path)
    config = configs.load_config(f"{path}:tiny", ["--config.lr=0.1", "--config.model.depth=2",
                                                  "--config.flag=true", "--config.model.dims=(3,4,5)"])
    assert config.steps == 2
    assert config.lr == pytest.approx(0.1)
    assert config.model.depth == 2 and isinstance(config.model.depth, int)
    assert config.flag is True
    assert config.model.dims == (3, 4, 5)


def test_unknown_field_and_bad_type_are_errors(tmp_path):
    path = _write_config(tmp_path)
    with pytest.raises(configs.ConfigError, match="no field 'model.widht'"):
        configs.load_config(str(path), ["--config.model.widht=3"])
    with pytest.raises(ValueError, match="--config.steps=abc"):
        configs.load_config(str(path), ["--config.steps=abc"])
    with pytest.raises(configs.ConfigError, match="nope.py"):
        configs.load_config("nope.py")


def test_save_and_read_config_round_trip(tmp_path):
    config = configs.load_config(str(_write_config(tmp_path)))
    configs.save_config(config, tmp_path / "config.json")
    back = configs.read_config(tmp_path / "config.json")
    assert back.to_dict() == config.to_dict()


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "dface_jax.cli", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for name in cli.COMMANDS:
        assert name in out


@pytest.mark.parametrize("variant", [None, "tiny", "long"])
def test_pretrain_synthetic_variants_build_their_tokenizer(variant):
    from dface_jax.models.tokenizer import TokenizerConfig

    name = "pretrain_synthetic.py" + (f":{variant}" if variant else "")
    config = configs.load_config(name)
    tokenizer = TokenizerConfig.from_dict(config.tokenizer.to_dict())
    assert (variant == "long") == (config.train.num_steps == 6400 and tokenizer.decoder_warp)


def test_unknown_pretrain_synthetic_variant_lists_the_known_ones():
    with pytest.raises(ValueError, match="'long', 'tiny'"):
        configs.load_config("pretrain_synthetic.py:longer")
