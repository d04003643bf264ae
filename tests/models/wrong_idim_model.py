import keras


def model(idim):
    ml_model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(1, activation="sigmoid")])
    ml_model.compile(optimizer="adam", loss="binary_crossentropy")
    return ml_model
