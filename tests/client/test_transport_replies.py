"""Compact replies round-trip, including the state-less ones sent while a job is unfinished."""

from __future__ import annotations

import numpy as np

from client.wire.compact import CompactReply, decode_reply, encode_reply


def test_unfinished_reply_without_states_round_trips() -> None:
    reply = decode_reply(encode_reply(CompactReply(status="Running", job_id="abc")))
    assert reply.status == "Running" and reply.job_id == "abc"
    assert reply.states.shape[0] == 0


def test_finished_reply_keeps_states_and_numbers() -> None:
    states = np.array([[1, 0, 1, 1, 0, 0, 1, 0, 1], [0, 0, 0, 0, 0, 0, 0, 0, 1]], dtype=np.uint8)
    reply = decode_reply(encode_reply(CompactReply(states=states, energies=np.array([-2.0, 1.5]),
                                                   frequencies=np.array([3, 1]))))
    np.testing.assert_array_equal(reply.states, states)
    np.testing.assert_array_equal(reply.energies, [-2.0, 1.5])
    np.testing.assert_array_equal(reply.frequencies, [3, 1])
