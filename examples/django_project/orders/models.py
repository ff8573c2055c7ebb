from django.db import models


class Order(models.Model):
    number = models.CharField(max_length=40, unique=True)
    email = models.EmailField()
    confirmed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.number
