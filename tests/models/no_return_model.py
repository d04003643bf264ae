import keras


def model(idim):
    ml_model = keras.Sequential([keras.Input((idim,)), keras.layers.Dense(1)])
    ml_model.compile(optimizer="adam", loss="mse")
