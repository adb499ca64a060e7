"""Build hook: setup.cfg holds the metadata; this file only adds the native parts."""
from setuptools import setup

setup()
