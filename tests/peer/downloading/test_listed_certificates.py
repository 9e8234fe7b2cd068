"""A downloader trusts a certificate a tracker lists only if it meets the identity rules."""

import pytest
from napshare.peer.downloading.fetch import PeerChannels
from napshare.peer.errors import PeerError, PeerFault

from tests.support.certificates import certificate


@pytest.mark.parametrize("changes", [{"ca": True}, {"critical_unknown": True}])
def test_a_listed_certificate_the_rules_do_not_allow_is_never_pinned(changes) -> None:
    channels = PeerChannels(plaintext=False)
    channels.pin("127.0.0.1:9", certificate(**changes))
    try:
        with pytest.raises(PeerError) as caught:
            channels.piece_layer("127.0.0.1:9")
    finally:
        channels.close()

    assert caught.value.fault is PeerFault.BROKEN
    assert "its listed certificate" in str(caught.value)
