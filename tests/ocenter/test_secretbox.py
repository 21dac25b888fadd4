"""Secrets oCenter must read back are encrypted at rest, and keys can rotate."""

import pytest
from cryptography.fernet import Fernet

from ocenter.lib.secretbox import SecretBox, new_token


def test_round_trip_and_ciphertext_hides_the_secret():
    box = SecretBox([Fernet.generate_key().decode()])
    token = new_token("ocp")
    sealed = box.encrypt(token)
    assert token not in sealed and box.decrypt(sealed) == token


def test_rotation_reads_old_ciphertexts_with_the_old_key_listed_second():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed = SecretBox([old]).encrypt("secret-value")
    assert SecretBox([new, old]).decrypt(sealed) == "secret-value"
    with pytest.raises(ValueError, match="old key is not listed"):
        SecretBox([new]).decrypt(sealed)


def test_tokens_are_prefixed_and_unique():
    tokens = {new_token("ocp") for _ in range(100)}
    assert len(tokens) == 100 and all(t.startswith("ocp_") and len(t) > 40 for t in tokens)
