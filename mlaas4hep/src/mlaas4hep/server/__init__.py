"""The MLaaS4HEP workflow server: upload inputs, submit workflow runs, follow and fetch them."""
