# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The short seeded fault campaign (issue 14) on the lab VM: a fixed seed, two workers, a role step or two.

tests/lab/campaign.py resets the array with 16 LUNs itself and ends with every filesystem unmounted, so the next
test's reset (any LUN count) finds nothing it cannot remove. The step lines are printed as they come (``-s``
shows them live; ``-rA`` shows them in the summary) and the failure message repeats the violations and the
step lines."""

from __future__ import annotations

import os
import time

import campaign

SEED = int(os.environ.get("LUNSAFE_CAMPAIGN_SEED", "14"))
# 30 steps (50 until 2026-12-06: about 700 s of a test command over its hour); the long campaigns run outside it
STEPS = int(os.environ.get("LUNSAFE_CAMPAIGN_STEPS", "30"))
WORKERS = 2
ROLE_EVERY = 7  # rounds: two role steps (rounds 6 and 13 of about 15)
LUNS = 16
# FC steps stay out of the test command's run (campaign.py draws them: the recorded FC campaign and by hand).
# The lab's FC array is LIO tcm_fc over FCoE VN2VN in the same kernel as the initiator, and after the FC steps
# of a seed-14 run its kernel can wedge: tcm_fc's remote-port work waits for aborted commands for good
# (fc_rport_eq in target_wait_for_cmds), so the next reset's ACL removal blocks in D state and every later FC
# test on that guest fails. Seen in two CI runs (2026-12-05: this test failed once; once every FC test after it
# errored and the run timed out) and reproduced 2026-12-06 by this test then tests/lab/test_fc_lab.py on one
# guest. A fault of the lab's target, not of the collection; the FC paths of the modules are tested by the
# fc_lun_attach, fc_info, multipath_flush and multipath_faulty_facts targets, test_fc_lab.py and Molecule lun_fc.
# Before 2026-12-06 fc_attach, fc_detach, fc_kill and fc_reuse ran here too.
FC_LUNS = 0
WEIGHTS = "fc_port_flap=0,fc_port_loss=0"


def test_short_seeded_campaign(lab) -> None:
    lines: list[str] = []

    def emit(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    emit(f"campaign: seed {SEED}, {STEPS} steps, {LUNS} LUNs, {WORKERS} workers, role step every {ROLE_EVERY} rounds")
    campaign.push(lab)
    start = time.monotonic()
    records, summary = campaign.run(
        lab,
        seed=SEED,
        steps=STEPS,
        luns=LUNS,
        workers=WORKERS,
        role_every=ROLE_EVERY,
        weights=WEIGHTS,
        fc_luns=FC_LUNS,
        emit=emit,
    )
    seconds = time.monotonic() - start
    report = campaign.report_lines(
        seed=SEED,
        luns=LUNS,
        workers=WORKERS,
        role_every=ROLE_EVERY,
        records=records,
        summary=summary,
        seconds=seconds,
        weights=WEIGHTS,
    )
    print("\n".join(report), flush=True)
    violations = summary.get("violations", [])
    mismatches = summary.get("data", {}).get("mismatches", 0)
    unclear = [
        (record["i"], error)
        for record in records
        for error in record.get("errors", [])
        if "Traceback" in error or not error.strip()
    ]
    context = "\n".join(["violations:", *[str(v) for v in violations], "steps:", *lines])[-12000:]
    assert len(records) == STEPS, f"{len(records)} step lines of {STEPS}\n{context}"
    assert violations == [], f"{len(violations)} invariant violations\n{context}"
    assert mismatches == 0, f"{mismatches} data mismatches\n{context}"
    assert unclear == [], f"failures without a clear error: {unclear}\n{context}"
    assert summary.get("data", {}).get("verified", 0) > 0, f"no data was read back\n{context}"
