"""openapi/openapi.yaml reads as the same document as openapi/openapi.json in a YAML 1.1
reader (PyYAML), which resolves plain dates and timestamps, yes/no/on/off and
sexagesimal numbers as something other than strings. Before, the examples' timestamps
came back as datetime objects."""

import json
import pathlib
import unittest

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


class YamlMatchesJson(unittest.TestCase):
    def test_the_yaml_document_equals_the_json_document_in_a_yaml_1_1_reader(self):
        from_json = json.loads((ROOT / "openapi" / "openapi.json").read_text(encoding="utf-8"))
        from_yaml = yaml.safe_load((ROOT / "openapi" / "openapi.yaml").read_text(encoding="utf-8"))
        self.assertEqual(from_yaml, from_json)


if __name__ == "__main__":
    unittest.main()
