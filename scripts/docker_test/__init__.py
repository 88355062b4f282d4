"""``make docker-test``: build both images and run the compose stack end to end on a real
Docker engine (a private ``dockerd`` when none answers, local base images when no registry
answers), then tear everything down. Run as ``python -m scripts.docker_test``; see
docs/deploy.md ("Proving the images: make docker-test").
"""
