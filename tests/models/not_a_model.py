def model(idim):
    return {"layers": [idim, 1]}
