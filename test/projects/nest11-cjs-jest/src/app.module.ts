import { Controller, Get, Module, Param, Post } from '@nestjs/common';
import { Session, SessionsModule } from 'nest-sessions';

interface Cart {
  items: string[];
}

@Controller('cart')
export class CartController {
  @Get()
  list(@Session() session: Session<Cart>) {
    return { items: session.get('items', []) };
  }

  @Post(':sku')
  add(@Session() session: Session<Cart>, @Param('sku') sku: string) {
    const items = [...session.get('items', []), sku];
    session.set('items', items);
    return { items };
  }
}

const secret = process.env.SESSION_SECRET;
if (!secret) throw new Error('Set SESSION_SECRET to a random string of at least 32 characters');

@Module({
  imports: [SessionsModule.forRoot(secret)],
  controllers: [CartController],
})
export class AppModule {}
