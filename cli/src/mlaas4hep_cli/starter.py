"""The commented starter configuration `mlaas4hep init` writes."""

STARTER = """\
# MLaaS4HEP deployment configuration. Every field is optional unless marked REQUIRED.
# Check it with `mlaas4hep validate --config THIS_FILE`, render with `mlaas4hep render`.
name: {name}                      # deployment name: lower-case letters, digits, '-'

target:
  kind: {target}                  # local (this machine, podman), orchestrator (INFN Cloud PaaS), im
  orchestrator_url: https://paas.cloud.infn.it/orchestrator
  im_url: https://im.cloud.infn.it/im
  # im_auth_file: ~/.mlaas4hep/im-auth.dat   # IM authorization lines: id = ...; type = ...

vm:                               # the virtual machine (cloud targets)
  num_cpus: 4                     # one of 1, 2, 4, 8, 16, 32
  mem_size: 8 GB                  # one of 2, 4, 8, 16, 32, 64 GB
  disk_size: 50 GB
  # flavor: large                 # instead of cpus/memory: small 2/4 GB, medium 4/8 GB,
                                  #   large 8/16 GB, xlarge 16/32 GB
  os_distribution: ubuntu
  os_version: "22.04"
  os_user: mlaas                  # login user created on the VM
  ssh_public_key: {ssh_key}       # REQUIRED for cloud targets: a key or its .pub file

oidc:                             # who may use the service
  issuer: {issuer}                # REQUIRED, e.g. https://iam.cloud.infn.it/
  client_id: {client_id}          # REQUIRED: the client registered for this deployment
  # client_secret_file: ~/.mlaas4hep/client-secret
  # audience: [mlaas4hep]         # accepted token audiences (default: the client id)
  groups_claim: groups
  admin_group: mlaas-admins       # members see every user's jobs
  # service_client_id: mlaas4hep-services      # client credentials used to publish models
  # service_client_secret_file: ~/.mlaas4hep/service-secret

ports:                            # public ports (HTTPS) on the VM
  server: 4433                    # workflow API
  tfaas: 8081                     # inference API
  jupyterhub: 8443
  xrootd: 1094

images:
  prefix: ""                      # registry prefix, e.g. harbor.cloud.infn.it/mlaas4hep/
  tag: latest
  oauth2_proxy: quay.io/oauth2-proxy/oauth2-proxy:v7.6.0-alpine

# Where IM and the orchestrator fetch this project's TOSCA type and Ansible code (OWNER/REPO@REF;
# default: this toolkit's release tag).
# source: someone/mlaas4hep@my-branch

services:
  front_proxy: oauth2-proxy       # oauth2-proxy, or gateway (TLS only; used offline)
  jupyterhub: true
  x509: false                     # X.509 proxy renewer + XRootD caching proxy
  executor: local                 # where jobs run: local, container, dask
  max_running_jobs: 2
  hub_memory_choices: [2GB, 4GB, 8GB]
  hub_gpu: false

x509:                             # with services.x509: the grid identity for remote reads
  # usercert: ~/.globus/usercert.pem
  # userkey: ~/.globus/userkey.pem
  # passphrase_file: ~/.mlaas4hep/userkey-passphrase
  # vo: cms
  origin: xrootd.ba.infn.it:1094  # redirector the cache reads from
"""
