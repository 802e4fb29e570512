# Metadata lives in setup.cfg. The web page templates sit at the top level of the
# repository and install as the package proxy.templates, which find_packages cannot see.
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["proxy", "proxy.*"]) + ["proxy.templates"],
    package_dir={"proxy.templates": "templates"},
)
