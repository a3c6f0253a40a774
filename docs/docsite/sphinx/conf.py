# Sphinx configuration of the lunsafe.san docsite (scripts/build-docs). Derived from what
# `antsibull-docs sphinx-init` writes, with one change: this build runs without network, so intersphinx
# reads a local inventory (written by scripts/build-docs from docs/docsite/sphinx/external-labels.txt)
# for the few labels of Ansible's own documentation the generated pages refer to, and nothing else.
import os

_HERE = os.path.dirname(os.path.abspath(__file__))

project = "lunsafe.san"
copyright = "lunsafe.san contributors"
title = "lunsafe.san documentation"
html_short_title = "lunsafe.san"

extensions = ["sphinx.ext.intersphinx", "sphinx_antsibull_ext"]

pygments_style = "ansible"
highlight_language = "YAML+Jinja"

html_theme = "sphinx_ansible_theme"
html_show_sphinx = False
display_version = False
html_use_smartypants = True
html_use_modindex = False
html_use_index = False
html_copy_source = False

intersphinx_mapping = {
    "ansible_devel": ("https://docs.ansible.com/projects/ansible/devel/", os.path.join(_HERE, "external.inv")),
    "ansible_collections": (
        "https://docs.ansible.com/projects/ansible/latest/",
        os.path.join(_HERE, "external-collections.inv"),
    ),
}

default_role = "any"
nitpicky = True
