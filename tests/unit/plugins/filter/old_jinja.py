# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Jinja loops the roles used before the filters replaced them, rendered by Ansible's own templar.

Each expression is kept here verbatim, as the role's YAML gave it to Ansible, so that the unit tests can pin
each filter to the data the old loop produced on the same input.
"""

from __future__ import annotations

from typing import Any

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from ansible_collections.lunsafe.san.tests.unit.compat import trust_as_template

# roles/lun_attach/tasks/main.yml, "Set the role output (one entry per LUN)": lun_attach_devices
LUN_ATTACH_DEVICES = (
    "{%- set out = [] -%} {%- for r in lun_attach__attached.luns -%} {%-   set dm = r.dm | default(none, true) or {}"
    " -%} {%-   set _ = out.append({\n        'lun': r.lun | string,\n        'wwid': r.wwid,\n"
    "        'by_id': r.by_id,\n        'dm_name': dm.name | default(none),\n"
    "        'dm_path': dm.path | default(none),\n        'devices': r.devices | map(attribute='path') | list,\n"
    "        'hctl': r.hctl,\n        'size_bytes': r.size_bytes,\n"
    "        'changed': r.devices | selectattr('new') | list | length > 0,\n      }) -%}\n{%- endfor -%} {{ out }}"
)

# roles/lun_detach/tasks/main.yml, "Unmap the LUNs on the array": vars lun_detach_unmap_luns
LUN_DETACH_UNMAP_LUNS = (
    "{%- set out = [] -%} {%- for r in lun_detach__plan.luns -%} {%-   set _ = out.append({'lun': r.lun, 'wwid':"
    " r.devices | map(attribute='wwid') | select | first | default(none)}) -%} {%- endfor -%} {{ out }}"
)

# roles/lun_detach/tasks/main.yml, "Set the role output (one entry per LUN)": lun_detach_result
LUN_DETACH_RESULT = (
    "{%- set out = [] -%} {%- for plan in lun_detach__plan.luns -%} {%-   set back = lun_detach__back.luns"
    "[loop.index0] -%} {%-   set _ = out.append({\n        'lun': plan.lun,\n"
    "        'wwid': plan.devices | map(attribute='wwid') | select | first | default(none),\n"
    "        'map': (plan.dm | default(none, true) or {}).name | default(none),\n"
    "        'paths': plan.devices | map(attribute='name') | list,\n"
    "        'came_back': [] if ansible_check_mode else back.devices | map(attribute='name') | list,\n"
    "        'logged_out': lun_detach__final.logged_out | default([]),\n"
    "        'changed': plan.devices | length > 0 or (lun_detach__final.logged_out | default([]) | length > 0),\n"
    "      }) -%}\n{%- endfor -%} {{ out }}"
)

# roles/faulty_remediation/tasks/main.yml, "Set the role output": faulty_remediation_report.refused
FAULTY_REMEDIATION_REFUSED = (
    "{%- set out = [] -%} {%- for r in faulty_remediation__flushed.results | default([]) | select('failed') -%}"
    " {%-   set _ = out.append({'name': r.item.name, 'wwid': r.item.wwid, 'msg': r.msg | default('')}) -%}"
    " {%- endfor -%} {{ out }}"
)

# roles/faulty_remediation/tasks/main.yml, "Set the role output": faulty_remediation_report.left_alone
FAULTY_REMEDIATION_LEFT_ALONE = (
    "{%- set out = [] -%} {%- for m in faulty_remediation__left -%} {%-   set why = ('held by ' ~ (m.holders |"
    " join(', '))) if m.holders else 'its LUN is still presented' -%} {%-   set _ = out.append({'name': m.name,"
    " 'wwid': m.wwid, 'reasons': m.reasons, 'why': why}) -%} {%- endfor -%} {{ out }}"
)


# roles/faulty_remediation/tasks/main.yml, "Select the maps that are safe to clean up": the selection before
# faulty_remediation_select, and the faulty maps it left alone
FAULTY_REMEDIATION_PLANNED = (
    "{{ ansible_facts.lunsafe_multipath.maps | rejectattr('presented') | selectattr('holders', 'equalto', []) | list }}"
)
FAULTY_REMEDIATION_LEFT = (
    "{{ ansible_facts.lunsafe_multipath.maps | selectattr('faulty')\n   | rejectattr('uuid', 'in',"
    " ansible_facts.lunsafe_multipath.maps | rejectattr('presented')\n                               |"
    " selectattr('holders', 'equalto', []) | map(attribute='uuid') | list) | list }}"
)


def render(expression: str, **variables: Any) -> Any:
    """What Ansible made of ``expression`` with these variables (as in a play: a trusted role template)."""
    return Templar(loader=DataLoader(), variables=variables).template(trust_as_template(expression))
