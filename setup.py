"""Build hook: setup.cfg holds the metadata; this file only adds the native parts.

Two products (decisions in csrc/buildcfg.py, documented in README.rst "Native shim"):

- ``socksify/libsocksify.so``, the LD_PRELOAD library, built by setuptools' own compiler as a
  plain shared object from every ``csrc/*.c``. It is declared as an Extension so that
  ``pip install .`` (wheel) and ``pip install -e .`` (in place) both put it into the package,
  but it is not a Python module: it gets a fixed file name, links no Python library and
  uses no Python symbol.
- ``socksify-run``, the native launcher (csrc/launcher/socksify-run.c, no Python start per
  run), linked by BuildExt after the extensions with the same compiler. It goes next to the
  library in the package (``socksify/socksify-run``, which finds the library beside itself)
  and, as a script, into the installation's ``bin/`` (the command on PATH). Both copies
  carry a library hint stamped in after linking (buildcfg.library_hint/stamp_library_hint):
  the library's absolute path in an in-place build (``pip install -e .``), else its place
  relative to ``bin/`` (``../lib/python3.X/site-packages/...``), so the ``bin/`` copy finds it
  with one stat(); when the hinted file is gone it searches
  ``../lib/python3*/{site,dist}-packages`` (an editable install's finder included) or falls
  back to ``python3 -m socksify.run``. Decision and figures: the launcher's header comment.
- ``socksify._native``, the cffi binding over the shim's pure parts: csrc/build_ffi.py
  defines the FFI; BuildExt writes its C source into the build directory and compiles it
  like any extension (cffi's ``cffi_modules`` hook would replace this build_ext class).
"""

import copy
import os
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.dist import Distribution
from setuptools.errors import CompileError, LinkError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc"))
import buildcfg  # noqa: E402

NATIVE_EXT_NAME = "socksify._native"


class BuildExt(build_ext):
    """build_ext that generates the cffi source and gives the preload library its plain
    name and no Python linkage."""

    def run(self):
        for ext in self.extensions:
            generated = any(src.endswith("_native.c") for src in ext.sources)
            if ext.name == NATIVE_EXT_NAME and not generated:
                from build_ffi import ffibuilder

                os.makedirs(self.build_temp, exist_ok=True)
                c_file = os.path.join(self.build_temp, "socksify._native.c")
                ffibuilder.emit_c_code(c_file)
                ext.sources.insert(0, c_file)
        super().run()
        self.build_launcher()

    def build_launcher(self):
        """Compile and link csrc/launcher/socksify-run.c into the package directory and
        into build/launcher/ (the copy BuildScripts puts into bin/): static musl when
        musl-gcc is there (buildcfg.launcher_cc), else with the system compiler; then stamp
        the library hint into both (buildcfg.library_hint)."""
        package_dir = "socksify" if self.inplace else os.path.join(self.build_lib, "socksify")
        musl = buildcfg.launcher_cc(os.environ)
        built = False
        if musl:
            try:
                self.build_musl_launcher(musl, package_dir)
                built = True
            except (CompileError, LinkError, OSError, subprocess.SubprocessError) as exc:
                self.warn(f"socksify-run: the musl build failed ({exc}); "
                          f"linking with {self.compiler.compiler_so[0]} instead")
        if not built:
            self.build_system_launcher(package_dir)
        # where the bin/ copy looks first for the library (one stat instead of a search of
        # ../lib; the launcher's header comment): the source tree in an in-place build
        hint = buildcfg.library_hint(bool(self.inplace), package_dir)
        for out_dir in (package_dir, buildcfg.LAUNCHER_SCRIPT_DIR):
            buildcfg.stamp_library_hint(os.path.join(out_dir, buildcfg.LAUNCHER_FILENAME), hint)

    def build_system_launcher(self, package_dir):
        """The launcher linked by setuptools' own compiler (static when libc.a exists)."""
        objects = self.compiler.compile(
            buildcfg.launcher_sources(),
            output_dir=os.path.join(self.build_temp, "launcher"),
            macros=[("_GNU_SOURCE", "1")],
            include_dirs=["csrc"],
            extra_postargs=buildcfg.compile_args(os.environ),
            depends=buildcfg.headers(),
        )
        for out_dir in (package_dir, buildcfg.LAUNCHER_SCRIPT_DIR):
            os.makedirs(out_dir, exist_ok=True)
            try:
                self.compiler.link_executable(
                    objects, buildcfg.LAUNCHER_FILENAME, output_dir=out_dir,
                    extra_postargs=buildcfg.launcher_link_args(os.environ),
                )
            except LinkError:  # no static libc (libc.a): a dynamic launcher works as well
                self.compiler.link_executable(
                    objects, buildcfg.LAUNCHER_FILENAME, output_dir=out_dir,
                    extra_postargs=buildcfg.link_args(os.environ),
                )

    def build_musl_launcher(self, musl, package_dir):
        """The launcher linked statically against musl by the musl-gcc driver. Python's
        include and library directories are left out (a glibc libc.a must never be linked
        in), and the binary must answer --help before it is used."""
        compiler = copy.copy(self.compiler)
        compiler.set_executables(compiler_so=[musl, *self.compiler.compiler_so[1:]],
                                 linker_exe=[musl])
        compiler.include_dirs, compiler.library_dirs, compiler.runtime_library_dirs = [], [], []
        objects = compiler.compile(
            buildcfg.launcher_sources(),
            output_dir=os.path.join(self.build_temp, "launcher-musl"),
            macros=[("_GNU_SOURCE", "1")],
            include_dirs=["csrc"],
            extra_postargs=buildcfg.compile_args(os.environ),
            depends=buildcfg.headers(),
        )
        for out_dir in (package_dir, buildcfg.LAUNCHER_SCRIPT_DIR):
            os.makedirs(out_dir, exist_ok=True)
            compiler.link_executable(
                objects, buildcfg.LAUNCHER_FILENAME, output_dir=out_dir,
                extra_postargs=buildcfg.launcher_link_args(os.environ),
            )
            subprocess.run([os.path.join(out_dir, buildcfg.LAUNCHER_FILENAME), "--help"],
                           stdout=subprocess.DEVNULL, check=True, timeout=30)

    def get_outputs(self):
        # the launcher is part of the package (wheel and editable installs record it)
        package_dir = "socksify" if self.inplace else os.path.join(self.build_lib, "socksify")
        return [*super().get_outputs(), os.path.join(package_dir, buildcfg.LAUNCHER_FILENAME)]

    def get_ext_filename(self, fullname):
        # called with the dotted name and, from get_ext_fullpath, with its last part only
        package, _, last = buildcfg.PRELOAD_EXT_NAME.rpartition(".")
        if fullname == buildcfg.PRELOAD_EXT_NAME:
            return os.path.join(package, buildcfg.PRELOAD_FILENAME)
        if fullname == last:
            return buildcfg.PRELOAD_FILENAME
        return super().get_ext_filename(fullname)

    def get_export_symbols(self, ext):
        if ext.name == buildcfg.PRELOAD_EXT_NAME:
            return []  # not a module: no PyInit_ symbol expected
        return super().get_export_symbols(ext)

    def get_libraries(self, ext):
        if ext.name == buildcfg.PRELOAD_EXT_NAME:
            return list(ext.libraries)  # never libpython
        return super().get_libraries(ext)


# distutils' build_scripts, as setuptools provides it on every Python (3.12 has no distutils)
build_scripts = Distribution().get_command_class("build_scripts")


class BuildScripts(build_scripts):
    """The launcher is an ELF executable: copied as it is (distutils' build_scripts would
    read it as a Python script to rewrite a #! line). Wheels and editable installs both run
    this, so every install kind gets the native ``socksify-run`` in bin/."""

    def run(self):
        launcher = os.path.join(buildcfg.LAUNCHER_SCRIPT_DIR, buildcfg.LAUNCHER_FILENAME)
        if not os.path.exists(launcher):
            self.run_command("build_ext")
        self.mkpath(self.build_dir)
        for script in self.scripts:
            out = os.path.join(self.build_dir, os.path.basename(script))
            self.copy_file(script, out)
            os.chmod(out, 0o755)

    def get_source_files(self):
        # what the sdist must carry to build the launcher (not the built binary)
        return buildcfg.launcher_sources()


preload = Extension(
    buildcfg.PRELOAD_EXT_NAME,
    sources=buildcfg.preload_sources(),
    depends=buildcfg.headers(),
    include_dirs=["csrc"],
    define_macros=[("_GNU_SOURCE", "1")],
    extra_compile_args=buildcfg.compile_args(os.environ),
    extra_link_args=buildcfg.link_args(os.environ),
    libraries=["dl", "pthread"],
)

native = Extension(
    NATIVE_EXT_NAME,
    sources=buildcfg.binding_sources(),  # + the generated cffi source (BuildExt.run)
    depends=buildcfg.headers(),
    include_dirs=["csrc"],
    define_macros=[("_GNU_SOURCE", "1")],
    extra_compile_args=buildcfg.compile_args(os.environ),
    extra_link_args=buildcfg.link_args(os.environ),
)

setup(
    ext_modules=[preload, native],
    cmdclass={"build_ext": BuildExt, "build_scripts": BuildScripts},
    # the launcher IS the socksify-run command on PATH (no console_scripts wrapper)
    scripts=[os.path.join(buildcfg.LAUNCHER_SCRIPT_DIR, buildcfg.LAUNCHER_FILENAME)],
)
