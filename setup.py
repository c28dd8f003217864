"""setup.py in the nbdev 2 style: every value comes from settings.ini."""

from configparser import ConfigParser
import setuptools, shlex

config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

requirements = shlex.split(cfg.get('requirements', ''))
dev_requirements = shlex.split(cfg.get('dev_requirements', ''))
min_python = cfg['min_python']

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    author=cfg['author'],
    author_email=cfg['author_email'],
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=['tsforge', 'tsforge.*']),
    include_package_data=True,
    install_requires=requirements,
    extras_require={'dev': dev_requirements},
    python_requires='>=' + min_python,
    zip_safe=False,
    # the `tsforge` Jupyter kernel the job notebooks name (nbs/25_kernel.ipynb): its kernelspec goes into the
    # environment's share/jupyter/kernels, its provisioner (IPC sockets, no TCP ports) is found by entry point
    data_files=[('share/jupyter/kernels/tsforge', ['share/jupyter/kernels/tsforge/kernel.json'])],
    entry_points={
        'nbdev': [f'{cfg.get("lib_path")}={cfg.get("lib_path")}._modidx:d'],
        'jupyter_client.kernel_provisioners': ['tsforge-ipc = tsforge.kernel:IPCProvisioner'],
    },
)
